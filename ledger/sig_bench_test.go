package ledger

import (
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"testing"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

func sigFixture(n int) (ed25519.PublicKey, [][]byte, [][]byte) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	var msgs, sigs [][]byte
	for i := range n {
		m := sha256.Sum256([]byte(fmt.Sprint(i)))
		msgs = append(msgs, m[:])
		sigs = append(sigs, ed25519.Sign(key, m[:]))
	}
	return key.Public().(ed25519.PublicKey), msgs, sigs
}

func BenchmarkVerifyStdlib(b *testing.B) {
	pub, msgs, sigs := sigFixture(64)
	for i := 0; b.Loop(); i++ {
		ed25519.Verify(pub, msgs[i%64], sigs[i%64])
	}
}

func BenchmarkVerifyZIP215(b *testing.B) {
	pub, msgs, sigs := sigFixture(64)
	opts := &voi.Options{Verify: voi.VerifyOptionsZIP_215}
	for i := 0; b.Loop(); i++ {
		voi.VerifyWithOptions(voi.PublicKey(pub), msgs[i%64], sigs[i%64], opts)
	}
}

// One signature alone with the key expanded once, as a chain's key cache
// holds it (a gossiped block).
func BenchmarkVerifyZIP215Expanded(b *testing.B) {
	pub, msgs, sigs := sigFixture(64)
	opts := &voi.Options{Verify: voi.VerifyOptionsZIP_215}
	exp, _ := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	for i := 0; b.Loop(); i++ {
		voi.VerifyExpandedWithOptions(exp, msgs[i%64], sigs[i%64], opts)
	}
}

// A gossiped block's whole check on a chain: shape, author key (cached and
// expanded), hash and signature; and the same without the cache.
func BenchmarkCheckOne(b *testing.B) {
	keys := newKeyCache()
	run := build(b, signer(1), Genesis(), 256, "x")
	for i := 0; b.Loop(); i++ {
		if err := run[i%256].checkSanity(keys); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckOneUncached(b *testing.B) {
	run := build(b, signer(1), Genesis(), 256, "x")
	for i := 0; b.Loop(); i++ {
		if err := run[i%256].CheckSanity(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBatch: signatures of one author's key, expanded, checked
// n at a time (n=1 is a single check, as gossip makes when it is idle).
func BenchmarkVerifyBatch(b *testing.B) {
	pub, msgs, sigs := sigFixture(64)
	opts := &voi.Options{Verify: voi.VerifyOptionsZIP_215}
	exp, _ := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	for _, n := range []int{1, 2, 4, 8, 16, 32, 64} {
		b.Run(fmt.Sprint("n=", n), func(b *testing.B) {
			for b.Loop() {
				if n == 1 {
					if !voi.VerifyExpandedWithOptions(exp, msgs[0], sigs[0], opts) {
						b.Fatal("check failed")
					}
					continue
				}
				v := voi.NewBatchVerifierWithCapacity(n)
				for i := range n {
					v.AddExpandedWithOptions(exp, msgs[i], sigs[i], opts)
				}
				if ok, _ := v.Verify(nil); !ok {
					b.Fatal("batch failed")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "us/sig")
		})
	}
}

func BenchmarkVerifyBatch64(b *testing.B) {
	pub, msgs, sigs := sigFixture(64)
	opts := &voi.Options{Verify: voi.VerifyOptionsZIP_215}
	exp, _ := voi.NewExpandedPublicKey(voi.PublicKey(pub))
	for _, expanded := range []bool{false, true} {
		b.Run(fmt.Sprint("expanded=", expanded), func(b *testing.B) {
			for b.Loop() {
				v := voi.NewBatchVerifierWithCapacity(64)
				for i := range 64 {
					if expanded {
						v.AddExpandedWithOptions(exp, msgs[i], sigs[i], opts)
					} else {
						v.AddWithOptions(voi.PublicKey(pub), msgs[i], sigs[i], opts)
					}
				}
				if ok, _ := v.Verify(nil); !ok {
					b.Fatal("batch failed")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*64), "us/sig")
		})
	}
}
