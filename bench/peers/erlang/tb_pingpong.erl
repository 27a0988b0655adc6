%% SPDX-License-Identifier: MIT
%% pingpong: two processes bounce one message back and forth N times.
-module(tb_pingpong).
-export([run/1]).

run(#{n := N}) ->
    Main = self(),
    Pong = spawn(fun pong/0),
    spawn(fun() -> Pong ! {self(), 0}, ping(Pong, N, Main) end),
    receive {done, Trips} -> {Trips, Trips, ""} end.

ping(Pong, N, Main) ->
    receive
        {trips, T} when T + 1 =:= N -> Main ! {done, N}, exit(Pong, kill);
        {trips, T} -> Pong ! {self(), T + 1}, ping(Pong, N, Main)
    end.

pong() ->
    receive {From, T} -> From ! {trips, T}, pong() end.
