package ledger

import "sync"

// verifiedSet remembers blocks whose signature this chain has checked, or
// made, by claimed hash and signature. A copy whose contents hash to its
// claimed hash and whose signature is the same is the same block: its
// signature need not be checked again. On a busy network each block
// arrives from several peers, by gossip and by sync, within moments; one
// Ed25519 verification is worth a hundred hash computations.
//
// It keeps two generations of at most verifiedKeep entries: when the
// current one fills, it becomes the previous one and the old previous one
// is forgotten, so it is bounded whatever arrives.
type verifiedSet struct {
	mu        sync.Mutex
	cur, prev map[verifiedKey]struct{}
}

type verifiedKey struct{ hash, sig string }

func newVerifiedSet() *verifiedSet {
	return &verifiedSet{cur: map[verifiedKey]struct{}{}, prev: map[verifiedKey]struct{}{}}
}

func (v *verifiedSet) add(b *Block) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.cur) >= verifiedKeep {
		v.prev, v.cur = v.cur, make(map[verifiedKey]struct{}, verifiedKeep)
	}
	v.cur[verifiedKey{b.Hash, b.Signature}] = struct{}{}
}

// has reports whether b is a copy of a block in the set: same claimed hash
// and signature, and contents that hash to that hash (a copy with altered
// contents keeps the claimed hash, not the computed one).
func (v *verifiedSet) has(b *Block) bool {
	k := verifiedKey{b.Hash, b.Signature}
	v.mu.Lock()
	_, ok := v.cur[k]
	if !ok {
		_, ok = v.prev[k]
	}
	v.mu.Unlock()
	if !ok {
		return false
	}
	h, err := b.ComputeHash()
	return err == nil && h == b.Hash
}
