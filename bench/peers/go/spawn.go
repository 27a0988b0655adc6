// SPDX-License-Identifier: MIT
// spawn: n short-lived goroutines, each receives its number (1..n) on its
// own channel, sends it back on a shared channel and ends; the main
// goroutine counts the answers and sums them. Checksum: n*(n+1)/2.
package main

func spawn(p params) (uint64, string) {
	answers := make(chan uint64, 1000)
	go func() {
		for i := 1; i <= p.n; i++ {
			in := make(chan uint64, 1)
			go func() { answers <- <-in }()
			in <- uint64(i)
		}
	}()
	var count, sum uint64
	for count < uint64(p.n) {
		sum += <-answers
		count++
	}
	return sum, ""
}
