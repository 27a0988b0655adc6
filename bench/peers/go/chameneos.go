// SPDX-License-Identifier: MIT
// chameneos: p.actors creatures (-c) meet p.n times through one mall
// goroutine; each creature has its own reply channel, the mall pairs two
// requests and answers both with the partner's id and colour. Checksum:
// the meetings counted by the creatures, 2·n.
package main

import "fmt"

type visit struct {
	id, colour int
	reply      chan visit // the creature's own channel
	partner    int        // in an answer: the partner's id, or -1 for "stop"
}

func chameneos(p params) (uint64, string) {
	mall := make(chan visit, p.actors)
	type report struct{ meetings, partners, colour int }
	reports := make(chan report, p.actors)
	for i := 0; i < p.actors; i++ {
		go func(id, colour int) {
			reply := make(chan visit, 1)
			meetings, partners := 0, 0
			for {
				mall <- visit{id: id, colour: colour, reply: reply}
				a := <-reply
				if a.partner < 0 {
					reports <- report{meetings, partners, colour}
					return
				}
				if a.colour != colour {
					colour = 3 - colour - a.colour
				}
				meetings++
				partners += a.partner
			}
		}(i+1, i%3)
	}
	pairSum := 0
	var waiting *visit
	for left := p.n; left > 0; left-- {
		for {
			v := <-mall
			if waiting == nil {
				waiting = &v
				continue
			}
			w := *waiting
			waiting = nil
			pairSum += v.id + w.id
			w.reply <- visit{id: v.id, colour: v.colour, partner: v.id}
			v.reply <- visit{id: w.id, colour: w.colour, partner: w.id}
			break
		}
	}
	total, partners, colours := 0, 0, 0
	for stopped := 0; stopped < p.actors; {
		select {
		case v := <-mall:
			v.reply <- visit{partner: -1}
		case r := <-reports:
			total += r.meetings
			partners += r.partners
			colours += r.colour
			stopped++
		}
	}
	if partners != pairSum {
		panic(fmt.Sprintf("partner ids: creatures saw %d, the mall %d", partners, pairSum))
	}
	return uint64(total), fmt.Sprintf(" colours=%d", colours)
}
