%% SPDX-License-Identifier: MIT
%% fanin: S sender processes each send N messages to one receiver that
%% counts them.
-module(tb_fanin).
-export([run/1]).

run(#{n := N, s := S}) ->
    Main = self(),
    Total = N * S,
    Recv = spawn(fun() -> count(0, Total, Main) end),
    [spawn(fun() -> send(Recv, N) end) || _ <- lists:seq(1, S)],
    receive {done, Count} -> {Count, Count, ""} end.

send(_, 0) -> ok;
send(Recv, K) -> Recv ! {item, K}, send(Recv, K - 1).

count(Total, Total, Main) -> Main ! {done, Total};
count(C, Total, Main) -> receive {item, _} -> count(C + 1, Total, Main) end.
