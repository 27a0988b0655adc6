%% SPDX-License-Identifier: MIT
%% skynet: a 10-ary tree of processes; leaves send their number to the
%% parent, inner nodes sum their 10 children and send the sum up.
-module(tb_skynet).
-export([run/1]).

run(#{n := N}) ->
    Main = self(),
    spawn(fun() -> node(Main, 0, N) end),
    receive {sum, Sum} -> {Sum, (N * 10 - 1) div 9, ""} end.

node(Parent, Num, 1) ->
    Parent ! {sum, Num};
node(Parent, Num, Size) ->
    Self = self(),
    S = Size div 10,
    [spawn(fun() -> node(Self, Num + I * S, S) end) || I <- lists:seq(0, 9)],
    Parent ! {sum, collect(10, 0)}.

collect(0, Sum) -> Sum;
collect(K, Sum) -> receive {sum, V} -> collect(K - 1, Sum + V) end.
