%% SPDX-License-Identifier: MIT
%% idle_memory: spawns N processes that wait for a message that never comes;
%% reports resident memory growth per process.
-module(tb_idle_memory).
-export([run/1]).

run(#{n := N}) ->
    Alive = atomics:new(1, []),
    Base = tb:rss_bytes(),
    [spawn(fun() -> atomics:add(Alive, 1, 1), receive stop -> ok end end)
     || _ <- lists:seq(1, N)],
    wait(Alive, N),
    Rss = tb:rss_bytes(),
    Extra = io_lib:format(" bytes_per_actor=~b rss_mib=~.1f",
                          [round(max(Rss - Base, 0) / N), Rss / 1048576]),
    {atomics:get(Alive, 1), N, lists:flatten(Extra)}.

wait(Alive, N) ->
    case atomics:get(Alive, 1) of
        N -> ok;
        _ -> timer:sleep(1), wait(Alive, N)
    end.
