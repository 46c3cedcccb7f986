package ledger

// orphanPool holds valid blocks whose parent is not known yet, so a block
// that overtakes its parent is connected when the parent arrives instead of
// being lost. It is bounded: the oldest block is evicted first.
type orphanPool struct {
	max      int
	blocks   map[string]*Block   // hash -> block
	children map[string][]string // prevHash -> hashes of held blocks
	order    []string            // insertion order, for eviction
}

func newOrphanPool(max int) *orphanPool {
	return &orphanPool{max: max, blocks: map[string]*Block{}, children: map[string][]string{}}
}

func (p *orphanPool) len() int { return len(p.blocks) }

func (p *orphanPool) add(b *Block) {
	if _, ok := p.blocks[b.Hash]; ok {
		return
	}
	for len(p.blocks) >= p.max && len(p.order) > 0 {
		p.remove(p.order[0])
	}
	p.blocks[b.Hash] = b
	p.children[b.PrevHash] = append(p.children[b.PrevHash], b.Hash)
	p.order = append(p.order, b.Hash)
}

func (p *orphanPool) remove(hash string) {
	b, ok := p.blocks[hash]
	if !ok {
		return
	}
	delete(p.blocks, hash)
	kids := p.children[b.PrevHash]
	for i, h := range kids {
		if h == hash {
			kids = append(kids[:i], kids[i+1:]...)
			break
		}
	}
	if len(kids) == 0 {
		delete(p.children, b.PrevHash)
	} else {
		p.children[b.PrevHash] = kids
	}
	for i, h := range p.order {
		if h == hash {
			p.order = append(p.order[:i], p.order[i+1:]...)
			break
		}
	}
}

// descendants removes and returns, parents first, every held block that
// descends from the block hash at height, dropping any whose index does not
// follow its parent's.
func (p *orphanPool) descendants(hash string, height uint64) []*Block {
	type link struct {
		hash   string
		height uint64
	}
	var out []*Block
	queue := []link{{hash, height}}
	for len(queue) > 0 {
		l := queue[0]
		queue = queue[1:]
		for _, kid := range append([]string(nil), p.children[l.hash]...) {
			b := p.blocks[kid]
			p.remove(kid)
			if b.Index != l.height+1 {
				continue
			}
			out = append(out, b)
			queue = append(queue, link{b.Hash, b.Index})
		}
	}
	return out
}
