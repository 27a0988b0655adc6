// SPDX-License-Identifier: MIT
// select: 8 producer goroutines each send p.n values into their own
// buffered channel (capacity 1024); one goroutine selects over the 8
// channels until all are closed. Checksum: values received (8*n).
package main

func selectBench(p params) (uint64, string) {
	const c = 8
	var chans [c]chan uint64
	for i := range chans {
		chans[i] = make(chan uint64, 1024)
		go func(ch chan uint64) {
			for k := 0; k < p.n; k++ {
				ch <- uint64(k)
			}
			close(ch)
		}(chans[i])
	}
	var count uint64
	a, b, cc, d, e, f, g, h := chans[0], chans[1], chans[2], chans[3],
		chans[4], chans[5], chans[6], chans[7]
	open := c
	for open > 0 {
		var ok bool
		select {
		case _, ok = <-a:
			if !ok {
				a = nil
			}
		case _, ok = <-b:
			if !ok {
				b = nil
			}
		case _, ok = <-cc:
			if !ok {
				cc = nil
			}
		case _, ok = <-d:
			if !ok {
				d = nil
			}
		case _, ok = <-e:
			if !ok {
				e = nil
			}
		case _, ok = <-f:
			if !ok {
				f = nil
			}
		case _, ok = <-g:
			if !ok {
				g = nil
			}
		case _, ok = <-h:
			if !ok {
				h = nil
			}
		}
		if ok {
			count++
		} else {
			open--
		}
	}
	return count, ""
}
