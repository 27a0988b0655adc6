// SPDX-License-Identifier: MIT
// spawn: n short-lived goroutines, each receives one value on its own
// channel, sends it back on a shared channel and ends.
package main

func spawn(p params) (uint64, string) {
	answers := make(chan uint64, 1000)
	go func() {
		for i := 0; i < p.n; i++ {
			in := make(chan uint64, 1)
			go func() { answers <- <-in }()
			in <- uint64(i)
		}
	}()
	var count uint64
	for count < uint64(p.n) {
		<-answers
		count++
	}
	return count, ""
}
