// SPDX-License-Identifier: MIT
// pingpong: two goroutines bounce one value back and forth n times.
package main

func pingpong(p params) (uint64, string) {
	ping := make(chan uint64, 1)
	pong := make(chan uint64, 1)
	done := make(chan uint64)
	go func() {
		for v := range ping {
			pong <- v
		}
	}()
	go func() {
		n := uint64(p.n)
		ping <- 0
		for trips := range pong {
			if trips+1 == n {
				done <- n
				return
			}
			ping <- trips + 1
		}
	}()
	return <-done, ""
}
