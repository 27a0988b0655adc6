%% SPDX-License-Identifier: MIT
%% fanin: S sender processes each send the integers N, N-1, ..., 1 to one
%% receiver that counts them and sums them. Checksum: the sum, S*N*(N+1)/2.
%%
%% The messages are bare integers: an immediate term is copied into the
%% receiver without allocating, where a tagged tuple costs a heap fragment
%% per message that the receiver's garbage collections then copy (about half
%% the time of this workload with {item, K}). The receiver keeps its message
%% queue off its heap (message_queue_data = off_heap), as is usual for a
%% process that many others send to: its collections do not walk the
%% messages still queued. No emulator flags beyond bench/run's +S and +P.
-module(tb_fanin).
-export([run/1]).

run(#{n := N, s := S}) ->
    Main = self(),
    Total = N * S,
    Recv = spawn_opt(fun() -> count(0, 0, Total, Main) end,
                     [{message_queue_data, off_heap}]),
    [spawn(fun() -> send(Recv, N) end) || _ <- lists:seq(1, S)],
    receive {done, Sum} -> {Sum, Total, ""} end.

send(_, 0) -> ok;
send(Recv, K) -> Recv ! K, send(Recv, K - 1).

count(Total, Sum, Total, Main) -> Main ! {done, Sum};
count(C, Sum, Total, Main) -> receive V -> count(C + 1, Sum + V, Total, Main) end.
