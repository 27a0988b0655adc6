// SPDX-License-Identifier: MIT
// idle_memory: n goroutines each wait on their own channel for a value that
// never comes; reports resident memory growth per goroutine.
package main

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
)

func rssBytes() uint64 {
	var size, resident uint64
	f, err := os.Open("/proc/self/statm")
	if err != nil {
		panic(err)
	}
	defer f.Close()
	if _, err := fmt.Fscan(f, &size, &resident); err != nil {
		panic(err)
	}
	return resident * uint64(os.Getpagesize())
}

func idleMemory(p params) (uint64, string) {
	var alive uint64
	var started sync.WaitGroup
	base := rssBytes()
	inboxes := make([]chan uint64, p.n)
	started.Add(p.n)
	for i := range inboxes {
		inboxes[i] = make(chan uint64, 1)
		go func(in chan uint64) {
			atomic.AddUint64(&alive, 1)
			started.Done()
			<-in
		}(inboxes[i])
	}
	started.Wait()
	rss := rssBytes()
	var grown uint64
	if rss > base {
		grown = rss - base
	}
	return atomic.LoadUint64(&alive), fmt.Sprintf(" bytes_per_actor=%.0f rss_mib=%.1f",
		float64(grown)/float64(p.n), float64(rss)/1048576)
}
