%% SPDX-License-Identifier: MIT
%% timer-lateness: A processes each arm K one-shot timers
%% (erlang:send_after to themselves) at seeded random delays of 1-D ms, and
%% measure how late each message arrives against its deadline (the time of
%% the arm plus the delay, on erlang:monotonic_time). Each process reports
%% its lateness figures to the main process, which reports the time until
%% the last timer fired, the worst, the 99th percentile and the median.
%% Started on its own (it prints the same lines as bench/timer_lateness):
%%   erl -noshell +S W:W +P 2000000 -pa DIR -run tb_timer_lateness main -extra [-a A] [-k K] [-d D] [-s SEED] [-w W]
-module(tb_timer_lateness).
-export([main/0]).

main() ->
    P = parse(init:get_plain_arguments(),
              #{a => 100000, k => 10, d => 200, s => 42, w => 2}),
    #{a := A, k := K, d := D, s := Seed} = P,
    io:format("timer-lateness erlang ~s: actors=~b timers_per_actor=~b max_delay_ms=~b seed=~b workers=~b~n",
              [erlang:system_info(otp_release), A, K, D, Seed,
               erlang:system_info(schedulers_online)]),
    Main = self(),
    T0 = erlang:monotonic_time(microsecond),
    spawn_all(A, K, D, Seed, Main),
    {Lates, Last} = collect(A, [], T0),
    Sorted = lists:sort(lists:append(Lates)),
    N = length(Sorted),
    Worst = lists:last(Sorted),
    P99 = lists:nth((N * 99 + 99) div 100, Sorted),
    P50 = lists:nth((N + 1) div 2, Sorted),
    io:format("RESULT timer-lateness erlang ~.6f ~b worst_ms=~.3f p99_ms=~.3f p50_ms=~.3f~n",
              [(Last - T0) / 1.0e6, N, Worst / 1000, P99 / 1000, P50 / 1000]),
    halt(0).

spawn_all(0, _, _, _, _) -> ok;
spawn_all(I, K, D, Seed, Main) ->
    spawn(fun() -> sleeper(I, K, D, Seed, Main) end),
    spawn_all(I - 1, K, D, Seed, Main).

%% Arms K timers, then takes the K messages as they come.
sleeper(I, K, D, Seed, Main) ->
    rand:seed(exsss, {Seed, I, 17}),
    Start = erlang:monotonic_time(microsecond),
    [arm(rand:uniform(D)) || _ <- lists:seq(1, K)],
    wait(K, [], Start, Main).

arm(Delay) ->
    Deadline = erlang:monotonic_time(microsecond) + Delay * 1000,
    erlang:send_after(Delay, self(), {fire, Deadline}).

wait(0, Lates, Last, Main) ->
    Main ! {done, Lates, Last};
wait(K, Lates, Last, Main) ->
    receive
        {fire, Deadline} ->
            Now = erlang:monotonic_time(microsecond),
            wait(K - 1, [max(0, Now - Deadline) | Lates], max(Now, Last), Main)
    end.

collect(0, Acc, Last) -> {Acc, Last};
collect(A, Acc, Last) ->
    receive
        {done, Lates, L} -> collect(A - 1, [Lates | Acc], max(L, Last))
    end.

parse([], P) -> P;
parse(["-a", V | T], P) -> parse(T, P#{a := list_to_integer(V)});
parse(["-k", V | T], P) -> parse(T, P#{k := list_to_integer(V)});
parse(["-d", V | T], P) -> parse(T, P#{d := list_to_integer(V)});
parse(["-s", V | T], P) -> parse(T, P#{s := list_to_integer(V)});
parse(["-w", V | T], P) -> parse(T, P#{w := list_to_integer(V)});
parse(["-m", _ | T], P) -> parse(T, P);  % troupe's arming mode: no meaning here
parse(["-t", _ | T], P) -> parse(T, P);  % timeout: enforced by the driver
parse(Args, _) ->
    io:format(standard_error, "bad arguments: ~p~n", [Args]),
    halt(64).
