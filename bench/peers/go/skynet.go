// SPDX-License-Identifier: MIT
// skynet: a 10-ary tree of goroutines; leaves send their number to the
// parent's channel, inner nodes sum their 10 children and send the sum up.
package main

func skynetNode(parent chan<- uint64, num, size uint64) {
	if size == 1 {
		parent <- num
		return
	}
	results := make(chan uint64, 10)
	size /= 10
	for i := uint64(0); i < 10; i++ {
		go skynetNode(results, num+i*size, size)
	}
	var sum uint64
	for i := 0; i < 10; i++ {
		sum += <-results
	}
	parent <- sum
}

func skynet(p params) (uint64, string) {
	root := make(chan uint64, 1)
	go skynetNode(root, 0, uint64(p.n))
	return <-root, ""
}
