// SPDX-License-Identifier: MIT
// fanin: s sender goroutines each send n values into one buffered channel;
// one receiver counts them.
package main

func fanin(p params) (uint64, string) {
	ch := make(chan uint64, 1000)
	total := uint64(p.senders) * uint64(p.n)
	for s := 0; s < p.senders; s++ {
		go func() {
			for i := 0; i < p.n; i++ {
				ch <- uint64(i)
			}
		}()
	}
	var count uint64
	for count < total {
		<-ch
		count++
	}
	return count, ""
}
