// SPDX-License-Identifier: MIT
// The Go peer of troupe's actor-core and channel benchmarks: goroutines and
// channels, GOMAXPROCS = workers. Usage: go-bench <workload> [-n N] [-w W]
// [-a A] [-s S]; broadcast takes [-r subscribers] [-m messages] and select
// [-c 8] [-k per_channel], chameneos [-c creatures] and requesters
// [-r requesters], the flags of troupe's programs, so that bench/run
// passes one argument string to every system (-a, -n stay accepted there
// as aliases). It prints the parameters, then the
// same RESULT line as the troupe programs.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"
)

type params struct {
	n, workers, actors, senders int
	channels                    int // select only: must be 8 (select.go has 8 cases)
}

// A workload runs its measured part and returns the checksum and the
// throughput it reports (items per second are computed by the caller).
type workload struct {
	defaultN int
	items    func(p params, checksum uint64) float64
	run      func(p params) (checksum uint64, extra string)
}

var workloads = map[string]workload{
	"pingpong":    {2000000, func(p params, c uint64) float64 { return float64(c) }, pingpong},
	"ring":        {10000000, func(p params, c uint64) float64 { return float64(c) }, ring},
	"skynet":      {1000000, func(p params, c uint64) float64 { return float64((p.n*10 - 1) / 9) }, skynet},
	"fanin":       {5000000, func(p params, c uint64) float64 { return float64(p.senders * p.n) }, fanin},
	"spawn":       {1000000, func(p params, c uint64) float64 { return float64(p.n) }, spawn},
	"idle_memory": {1000000, func(p params, c uint64) float64 { return float64(p.n) }, idleMemory},
	"broadcast":   {10000, func(p params, c uint64) float64 { return float64(c) }, broadcast},
	"select":      {1000000, func(p params, c uint64) float64 { return float64(c) }, selectBench},
	// -c creatures (default 500) meet n times; -r requesters (64) ask n each
	"chameneos":  {2000000, func(p params, c uint64) float64 { return float64(p.n) }, chameneos},
	"requesters": {50000, func(p params, c uint64) float64 { return float64(p.n * p.actors) }, requesters},
	// -a is the number of goroutines (bench/run passes it); n is unused
	"timer-lateness": {0, func(p params, c uint64) float64 { return float64(c) }, timerLateness},
}

// How the checksum of a workload that sums the values it receives is
// formed, for the parameter line.
var checksumOf = map[string]string{
	"fanin": " checksum=s*n*(n+1)/2",
	"spawn": " checksum=n*(n+1)/2",
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: go-bench pingpong|ring|skynet|fanin|spawn|idle_memory|broadcast|select|chameneos|requesters [-n N] [-w W] [-a A] [-s S]\n"+
			"       go-bench broadcast [-r subscribers] [-m messages]; go-bench select [-c 8] [-k per_channel]\n"+
			"       go-bench chameneos [-c creatures] [-n meetings]; go-bench requesters [-r requesters] [-n per_requester]")
		os.Exit(64)
	}
	name := os.Args[1]
	w, ok := workloads[name]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown workload %q\n", name)
		os.Exit(64)
	}
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	var p params
	fs.IntVar(&p.n, "n", w.defaultN, "round trips, hops, leaves, messages per sender or actors")
	fs.IntVar(&p.workers, "w", 2, "worker threads (GOMAXPROCS)")
	fs.IntVar(&p.actors, "a", 1000, "actors in the ring")
	fs.IntVar(&p.senders, "s", 0, "fanin senders (0 = workers)")
	fs.Int("t", 600, "timeout in seconds (ignored: the driver enforces it)")
	// The letters of troupe's programs for the channel workloads; they
	// write the same fields as the generic flags, whose defaults match.
	switch name {
	case "broadcast":
		fs.IntVar(&p.actors, "r", 1000, "subscribers")
		fs.IntVar(&p.n, "m", w.defaultN, "messages")
	case "chameneos":
		fs.IntVar(&p.actors, "c", 500, "creatures")
	case "requesters":
		fs.IntVar(&p.actors, "r", 64, "requesters")
	case "select":
		fs.IntVar(&p.channels, "c", 8, "channels (only 8: select.go is an 8-case select)")
		fs.IntVar(&p.n, "k", w.defaultN, "messages per channel")
	}
	fs.Parse(os.Args[2:])
	if p.senders == 0 {
		p.senders = p.workers
	}
	if name == "select" && p.channels != 8 {
		fmt.Fprintf(os.Stderr, "select: -c %d: only 8 channels are implemented\n", p.channels)
		os.Exit(64)
	}
	runtime.GOMAXPROCS(p.workers)
	fmt.Printf("%s go %s: n=%d workers=%d actors=%d senders=%d%s\n", name,
		strings.TrimPrefix(runtime.Version(), "go"), p.n, p.workers, p.actors, p.senders,
		checksumOf[name])

	start := time.Now()
	checksum, extra := w.run(p)
	secs := time.Since(start).Seconds()
	fmt.Printf("RESULT %s go %.6f %d rate=%.0f%s\n", name, secs, checksum,
		w.items(p, checksum)/secs, extra)
}
