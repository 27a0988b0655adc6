// SPDX-License-Identifier: MIT
// fanin: s sender goroutines each send the values 1..n into one buffered
// channel; one receiver counts them and sums the values.
// Checksum: the sum, s*n*(n+1)/2.
package main

func fanin(p params) (uint64, string) {
	ch := make(chan uint64, 1000)
	total := uint64(p.senders) * uint64(p.n)
	for s := 0; s < p.senders; s++ {
		go func() {
			for i := 1; i <= p.n; i++ {
				ch <- uint64(i)
			}
		}()
	}
	var count, sum uint64
	for count < total {
		sum += <-ch
		count++
	}
	return sum, ""
}
