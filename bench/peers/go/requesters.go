// SPDX-License-Identifier: MIT
// requesters: p.actors requesters (-r) each send p.n requests to one server
// goroutine and wait for each answer on their own channel. Request i (1..n)
// of requester j (0..r-1) is answered with j·n + i. Checksum: the sum of
// all the answers.
package main

type request struct {
	who, seq uint64
	reply    chan uint64
}

func requesters(p params) (uint64, string) {
	server := make(chan request, p.actors)
	sums := make(chan uint64, p.actors)
	n := uint64(p.n)
	go func() {
		for r := range server {
			r.reply <- r.who*n + r.seq
		}
	}()
	for j := 0; j < p.actors; j++ {
		go func(who uint64) {
			reply := make(chan uint64, 1)
			sum := uint64(0)
			for i := uint64(1); i <= n; i++ {
				server <- request{who, i, reply}
				sum += <-reply
			}
			sums <- sum
		}(uint64(j))
	}
	total := uint64(0)
	for j := 0; j < p.actors; j++ {
		total += <-sums
	}
	close(server)
	return total, ""
}
