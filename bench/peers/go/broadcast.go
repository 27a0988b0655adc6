// SPDX-License-Identifier: MIT
// broadcast: one publisher, p.actors subscriber goroutines, p.n messages;
// every subscriber must see every message. Go has no broadcast channel, so
// the publisher sends a pointer to the one shared message into each
// subscriber's buffered channel (capacity 1024); closing the channels ends
// the run. Checksum: messages seen, summed over subscribers (R*M).
package main

import "sync"

type bcastItem struct{ seq uint64 }

func broadcast(p params) (uint64, string) {
	r := p.actors
	subs := make([]chan *bcastItem, r)
	counts := make([]uint64, r)
	var wg sync.WaitGroup
	for i := 0; i < r; i++ {
		subs[i] = make(chan *bcastItem, 1024)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var n uint64
			for range subs[i] {
				n++
			}
			counts[i] = n
		}(i)
	}
	for k := 0; k < p.n; k++ {
		it := &bcastItem{seq: uint64(k)}
		for i := 0; i < r; i++ {
			subs[i] <- it
		}
	}
	for i := 0; i < r; i++ {
		close(subs[i])
	}
	wg.Wait()
	var sum uint64
	for _, c := range counts {
		sum += c
	}
	return sum, ""
}
