package node

import (
	"testing"

	"github.com/libp2p/go-libp2p"
)

// mDNS runs where a LAN can hear it: a node's own transports on an address
// other than loopback. (TestLAN, in the network-namespace lab, shows two
// nodes finding each other.)
func TestMDNSOn(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want bool
	}{
		{Config{ListenHost: "127.0.0.1"}, false},
		{Config{ListenHost: "::1"}, false},
		{Config{ListenHost: "0.0.0.0"}, true},
		{Config{ListenHost: "192.168.1.2"}, true},
		{Config{ListenHost: "192.168.1.2", DisableMDNS: true}, false},
		{Config{ListenHost: "0.0.0.0", Transports: []libp2p.Option{}}, false},
	} {
		if got := mdnsOn(tc.cfg); got != tc.want {
			t.Errorf("%s (mDNS off %v, own transports %v): mDNS %v, want %v", tc.cfg.ListenHost, tc.cfg.DisableMDNS, tc.cfg.Transports == nil, got, tc.want)
		}
	}
}
