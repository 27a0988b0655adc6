// SPDX-License-Identifier: MIT
// ring: a actors (goroutines, one inbox channel each) pass a token n times;
// each hop decrements it.
package main

type token struct{ left, hops uint64 }

func ring(p params) (uint64, string) {
	inbox := make([]chan token, p.actors)
	for i := range inbox {
		inbox[i] = make(chan token, 1)
	}
	done := make(chan uint64)
	for i := range inbox {
		go func(in, next chan token) {
			for t := range in {
				if t.left == 0 {
					done <- t.hops
					return
				}
				next <- token{t.left - 1, t.hops + 1}
			}
		}(inbox[i], inbox[(i+1)%len(inbox)])
	}
	inbox[0] <- token{left: uint64(p.n)}
	return <-done, ""
}
