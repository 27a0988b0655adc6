%% SPDX-License-Identifier: MIT
%% ring: A processes in a ring pass a token N times; each hop decrements it.
%% The first process spawns the others so that the last can point back at it.
-module(tb_ring).
-export([run/1]).

run(#{n := N, a := A}) ->
    Main = self(),
    First = spawn(fun() -> first(A, Main) end),
    First ! {token, N, 0},
    receive {done, Hops} -> {Hops, Hops, ""} end.

first(A, Main) ->
    Self = self(),
    Next = lists:foldl(fun(_, Nx) -> spawn(fun() -> node(Nx, Main) end) end,
                       Self, lists:seq(2, A)),
    node(Next, Main).

node(Next, Main) ->
    receive
        {token, 0, Hops} -> Main ! {done, Hops}, node(Next, Main);
        {token, Left, Hops} -> Next ! {token, Left - 1, Hops + 1}, node(Next, Main)
    end.
