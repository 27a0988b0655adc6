// SPDX-License-Identifier: MIT
// timer-lateness: p.actors goroutines each arm 10 one-shot timers
// (time.AfterFunc) at seeded random delays of 1-200 ms; each timer sends its
// deadline (the time of the arm plus the delay) to its goroutine, which
// measures how late it got it. Reports the worst, p99 and median lateness;
// the checksum is the fired count.
package main

import (
	"fmt"
	"math/rand"
	"sort"
	"time"
)

func timerLateness(p params) (uint64, string) {
	const perActor, maxDelay = 10, 200
	results := make(chan []time.Duration, 1024)
	for i := 0; i < p.actors; i++ {
		go func(i int) {
			r := rand.New(rand.NewSource(int64(42 + i)))
			fired := make(chan time.Time, perActor)
			for k := 0; k < perActor; k++ {
				d := time.Duration(1+r.Intn(maxDelay)) * time.Millisecond
				deadline := time.Now().Add(d)
				time.AfterFunc(d, func() { fired <- deadline })
			}
			late := make([]time.Duration, 0, perActor)
			for k := 0; k < perActor; k++ {
				late = append(late, time.Since(<-fired))
			}
			results <- late
		}(i)
	}
	all := make([]time.Duration, 0, p.actors*perActor)
	for i := 0; i < p.actors; i++ {
		all = append(all, <-results...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	n := len(all)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return uint64(n), fmt.Sprintf(" worst_ms=%.3f p99_ms=%.3f p50_ms=%.3f",
		ms(all[n-1]), ms(all[(n*99+99)/100-1]), ms(all[(n+1)/2-1]))
}
