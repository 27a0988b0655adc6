%% SPDX-License-Identifier: MIT
%% The Erlang/OTP peer of troupe's actor-core benchmarks: plain processes and
%% messages. Compiled with erlc by bench/run and started as
%%   erl -noshell +S W:W +P 2000000 -pa DIR -run tb main -extra <workload> [-n N] [-w W] [-a A] [-s S]
%% It prints the parameters, then the same RESULT line as the troupe programs.
-module(tb).
-export([main/0, rss_bytes/0]).

defaults() ->
    #{"pingpong" => 2000000, "ring" => 10000000, "skynet" => 1000000,
      "fanin" => 5000000, "spawn" => 1000000, "idle_memory" => 1000000}.

main() ->
    [Name | Args] = init:get_plain_arguments(),
    P0 = #{n => maps:get(Name, defaults()), w => 2, a => 1000, s => 0},
    P1 = parse(Args, P0),
    P = case maps:get(s, P1) of 0 -> P1#{s := maps:get(w, P1)}; _ -> P1 end,
    io:format("~s erlang ~s: n=~b workers=~b actors=~b senders=~b~s~n",
              [Name, erlang:system_info(otp_release), maps:get(n, P),
               erlang:system_info(schedulers_online), maps:get(a, P), maps:get(s, P),
               checksum_of(Name)]),
    Mod = list_to_atom("tb_" ++ Name),
    T0 = erlang:monotonic_time(microsecond),
    {Checksum, Items, Extra} = Mod:run(P),
    Secs = (erlang:monotonic_time(microsecond) - T0) / 1.0e6,
    io:format("RESULT ~s erlang ~.6f ~b rate=~b~s~n",
              [Name, Secs, Checksum, round(Items / Secs), Extra]),
    halt(0).

%% How the checksum of a workload that sums what it receives is formed.
checksum_of("fanin") -> " checksum=s*n*(n+1)/2";
checksum_of("spawn") -> " checksum=n*(n+1)/2";
checksum_of(_) -> "".

parse([], P) -> P;
parse(["-n", V | T], P) -> parse(T, P#{n := list_to_integer(V)});
parse(["-w", V | T], P) -> parse(T, P#{w := list_to_integer(V)});
parse(["-a", V | T], P) -> parse(T, P#{a := list_to_integer(V)});
parse(["-s", V | T], P) -> parse(T, P#{s := list_to_integer(V)});
parse(["-t", _ | T], P) -> parse(T, P);  % timeout: enforced by the driver
parse(Args, _) ->
    io:format(standard_error, "bad arguments: ~p~n", [Args]),
    halt(64).

%% Resident set size of the emulator in bytes (VmRSS of /proc/self/status).
rss_bytes() ->
    {ok, Status} = file:read_file("/proc/self/status"),
    {match, [Kb]} = re:run(Status, "VmRSS:\\s+(\\d+) kB", [{capture, all_but_first, list}]),
    list_to_integer(Kb) * 1024.
