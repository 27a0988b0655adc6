%% SPDX-License-Identifier: MIT
%% spawn: a spawner process creates N short-lived processes; each receives
%% its number (N down to 1), sends it back to the main process and ends.
%% The main process counts the answers and sums them (bare integers, as in
%% tb_fanin). Checksum: the sum, N*(N+1)/2.
-module(tb_spawn).
-export([run/1]).

run(#{n := N}) ->
    Main = self(),
    spawn(fun() -> spawner(N, Main) end),
    count(0, 0, N).

spawner(0, _) -> ok;
spawner(K, Main) ->
    Pid = spawn(fun() -> receive V -> Main ! V end end),
    Pid ! K,
    spawner(K - 1, Main).

count(N, Sum, N) -> {Sum, N, ""};
count(C, Sum, N) -> receive V -> count(C + 1, Sum + V, N) end.
