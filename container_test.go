package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gossipchain/ledger"
	"gossipchain/node"
)

// The container image (deploy/container/Containerfile, built by
// scripts/image.sh) run as a user would: three containers on a network of
// their own, configured by their environment alone, the second and third
// given the first one's address; a line typed on the second one's console
// reaches all three, read through their APIs.
//
// It needs a container runtime that works: podman (Debian's, with the runc
// runtime; .ci/run installs both) or docker. Where none does, it is
// skipped, saying why. It takes about 2 minutes from a cold Go build cache
// (the static build), about 15 s with a warm one.
func TestContainers(t *testing.T) {
	if testing.Short() {
		t.Skip("container test skipped in -short mode")
	}
	rt := containerRuntime(t)
	suffix := randomSuffix(t)
	image := "gossipchain-test-" + suffix + ":latest"
	t0 := time.Now()
	out, err := rt.command("scripts/image.sh", "--tag", image, "--runtime", rt.name).CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s", err, out)
	}
	t.Cleanup(func() { rt.run(t, "rmi", "-f", image) })
	built := time.Since(t0)
	// The image runs at all: a runtime that cannot start a container (no
	// cgroups it can use, rlimits it may not set) is a skip, not a failure.
	out, err = rt.command(rt.name, "run", "--rm", image, "version").CombinedOutput()
	if err != nil {
		t.Skipf("%s cannot run a container here, so the image is not tested: %v\n%s", rt.name, err, lastLines(out, 5))
	}
	// scripts/image.sh stamps the revision where the checkout has one
	// (-buildvcs=auto), so the image may name a version where a test
	// build says devel.
	versionLine, _, _ := strings.Cut(string(out), "\n")
	imageVersion, ok := strings.CutPrefix(versionLine, "gossipchain ")
	if !ok || imageVersion == "" {
		t.Fatalf("gossipchain version in the image: %q, want a first line \"gossipchain <version>\"", out)
	}

	network := "gossipchain-test-" + suffix
	rt.run(t, "network", "create", network)
	t.Cleanup(func() { rt.run(t, "network", "rm", "-f", network) })
	const token = "container-test-token"
	start := func(k int, peer string) *container {
		t.Helper()
		c := &container{rt: rt, name: fmt.Sprintf("%s-%d", network, k), token: token}
		env := []string{"GOSSIPCHAIN_API=0.0.0.0:8000", "GOSSIPCHAIN_API_TOKEN=" + token, "GOSSIPCHAIN_METRICS=0.0.0.0:9000"}
		if peer != "" {
			env = append(env, "GOSSIPCHAIN_PEER="+peer)
		}
		c.start(t, image, network, env)
		return c
	}
	t1 := time.Now()
	first := start(1, "")
	s := first.status(t)
	var addr string
	for _, a := range s.Addrs {
		if !strings.HasPrefix(a, "/ip4/127.") {
			addr = a // the one on the containers' network
			break
		}
	}
	if addr == "" || !strings.Contains(addr, "/tcp/3000/p2p/"+s.ID) {
		t.Fatalf("first container's addresses %q: none on the network, port 3000", s.Addrs)
	}
	nodes := []*container{first, start(2, addr), start(3, addr)}
	waitFor(t, 60*time.Second, "every container in the blocks mesh", func() bool {
		for _, c := range nodes {
			if c.status(t).Mesh == 0 {
				return false
			}
		}
		return true
	}, func() string { return nodes[0].logs() })

	line := "typed in a container " + suffix
	if _, err := io.WriteString(nodes[1].stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
	var heads []string
	waitFor(t, 60*time.Second, "the typed line on every container's chain", func() bool {
		heads = heads[:0]
		for _, c := range nodes {
			var blocks []ledger.Block
			c.get(t, "/blocks?from=1", &blocks)
			if len(blocks) != 1 || blocks[0].Data != line {
				return false
			}
			heads = append(heads, blocks[0].Hash)
		}
		return heads[0] == heads[1] && heads[1] == heads[2]
	}, func() string { return fmt.Sprintf("heads %q; second container's output:\n%s", heads, nodes[1].logs()) })
	converged := time.Since(t1)

	// Each names the others' build; each runs as the image's user, not root.
	var peers []node.PeerInfo
	nodes[0].get(t, "/peers", &peers)
	for _, p := range peers {
		if p.Agent != "gossipchain/"+imageVersion {
			t.Errorf("peer %s runs %q, want gossipchain/%s", p.ID, p.Agent, imageVersion)
		}
	}
	if user := strings.TrimSpace(rt.output(t, "inspect", "--format", "{{.Config.User}}", nodes[0].name)); user != "65532:65532" {
		t.Errorf("container user %q, want 65532:65532", user)
	}
	for _, c := range nodes {
		c.stop(t)
	}
	t.Logf("image built in %v; three containers started and agreed on the typed line in %v", built.Round(time.Millisecond), converged.Round(time.Millisecond))
}

// containerCLI is a container command line: podman, or docker.
type containerCLI struct {
	name string
	env  []string // added to this process's environment
}

func (r *containerCLI) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), r.env...)
	return cmd
}

// output runs the runtime with args, failing the test if it fails.
func (r *containerCLI) output(t *testing.T, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := r.command(r.name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", r.name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// run runs the runtime with args, logging a failure (cleanups use it).
func (r *containerCLI) run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := r.command(r.name, args...).CombinedOutput(); err != nil {
		t.Logf("%s %s: %v\n%s", r.name, strings.Join(args, " "), err, out)
	}
}

// containerRuntime finds a container runtime that answers, or skips the
// test saying why. Podman gets a configuration of its own: the runc
// runtime when it is there (Debian's crun fails on a host with cgroups in
// hybrid mode) and no default rlimits (a container may be refused
// setrlimit).
func containerRuntime(t *testing.T) *containerCLI {
	t.Helper()
	if path, err := exec.LookPath("podman"); err == nil {
		conf := "[containers]\ndefault_ulimits = []\n"
		if _, err := exec.LookPath("runc"); err == nil {
			conf += "[engine]\nruntime = \"runc\"\n"
		}
		file := filepath.Join(t.TempDir(), "containers.conf")
		if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		rt := &containerCLI{name: path, env: []string{"CONTAINERS_CONF=" + file}}
		if out, err := rt.command(path, "info").CombinedOutput(); err != nil {
			t.Skipf("container test skipped: podman info fails: %v\n%s", err, lastLines(out, 5))
		}
		return rt
	}
	if path, err := exec.LookPath("docker"); err == nil {
		if out, err := exec.Command(path, "info").CombinedOutput(); err != nil {
			t.Skipf("container test skipped: no podman, and docker info fails: %v\n%s", err, lastLines(out, 3))
		}
		return &containerCLI{name: path}
	}
	t.Skip("container test skipped: no podman or docker here (apt-get install podman runc)")
	return nil
}

// container is a node running in a container, attached: the test holds
// its console (stdin) and reads its output.
type container struct {
	rt     *containerCLI
	name   string
	token  string
	api    string // http://127.0.0.1:PORT, published from the container's 8000
	stdin  io.WriteCloser
	out    *syncBuffer // console and log
	cmd    *exec.Cmd
	exited chan error
}

func (c *container) start(t *testing.T, image, network string, env []string) {
	t.Helper()
	args := []string{"run", "-i", "--rm", "--name", c.name, "--network", network, "-p", "127.0.0.1::8000", "-v", c.name + ":/data"}
	for _, e := range env {
		args = append(args, "-e", e)
	}
	c.cmd = c.rt.command(c.rt.name, append(args, image)...)
	c.out = &syncBuffer{}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	var err error
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.exited = make(chan error, 1)
	go func() { c.exited <- c.cmd.Wait() }()
	t.Cleanup(func() {
		c.rt.run(t, "rm", "-f", c.name)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
		c.stdin.Close()
		c.rt.run(t, "volume", "rm", "-f", c.name)
	})
	waitFor(t, 60*time.Second, c.name+"'s API published", func() bool {
		select {
		case err := <-c.exited:
			t.Fatalf("%s exited: %v\n%s", c.name, err, c.out)
		default:
		}
		out, err := c.rt.command(c.rt.name, "port", c.name, "8000/tcp").Output()
		port := strings.TrimSpace(string(out))
		if err != nil || port == "" {
			return false
		}
		c.api = "http://" + strings.Split(port, "\n")[0]
		resp, err := http.Get(c.api + "/") // the dashboard: no token needed
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, func() string { return c.out.String() })
}

// get reads the container's API at path into v.
func (c *container) get(t *testing.T, path string, v any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", c.api+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", c.name, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("%s: GET %s: %d %s", c.name, path, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("%s: GET %s: %v", c.name, path, err)
	}
}

func (c *container) status(t *testing.T) node.Status {
	var s node.Status
	c.get(t, "/status", &s)
	return s
}

func (c *container) logs() string { return lastLines([]byte(c.out.String()), 20) }

// stop stops the container as an operator would (SIGTERM) and requires a
// clean exit.
func (c *container) stop(t *testing.T) {
	t.Helper()
	c.rt.run(t, "stop", "-t", "20", c.name)
	select {
	case err := <-c.exited:
		c.exited <- err // for the cleanup
		if err != nil {
			t.Errorf("%s: %v after stop:\n%s", c.name, err, c.logs())
		}
	case <-time.After(30 * time.Second):
		t.Errorf("%s did not stop within 30 s", c.name)
	}
}

func randomSuffix(t *testing.T) string {
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// lastLines returns the last n lines of b.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
