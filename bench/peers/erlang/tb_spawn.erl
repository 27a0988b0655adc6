%% SPDX-License-Identifier: MIT
%% spawn: a spawner process creates N short-lived processes; each receives
%% one message, sends it back to the main process and ends.
-module(tb_spawn).
-export([run/1]).

run(#{n := N}) ->
    Main = self(),
    spawn(fun() -> spawner(N, Main) end),
    count(0, N).

spawner(0, _) -> ok;
spawner(K, Main) ->
    Pid = spawn(fun() -> receive {hello, V} -> Main ! {answer, V} end end),
    Pid ! {hello, K},
    spawner(K - 1, Main).

count(N, N) -> {N, N, ""};
count(C, N) -> receive {answer, _} -> count(C + 1, N) end.
