// yamux-peer: a test peer built on github.com/hashicorp/yamux as Debian ships it (commit df201c7
// of 2019, the generation the Kata 1.x agent vendors). kata-proxy's interop tests, end-to-end
// tests and benchmarks drive it; it is not part of the product.
//
// Build (offline, GOPATH mode, from the repository root; test/helpers/go-peer.ts does this):
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOFLAGS= CGO_ENABLED=0 \
//	  GOCACHE=$PWD/test/go-peer/bin/.gocache go build -o test/go-peer/bin/yamux-peer ./test/go-peer
//
// Every command prints JSON lines ("events") on stdout, e.g. {"event":"ready",...}; hashicorp's
// own log lines become {"event":"log","msg":"[ERR] yamux: ..."}. Sessions never use keepalive
// (like the Kata agent) unless -keepalive is given.
//
// COMMANDS
//
//	yamux-peer serve  (-listen PATH | -connect PATH) [-role server|client] [-backlog N]
//	                  [-window BYTES] [-accept=false] [-goaway-after N] [-write-timeout MS]
//	                  [-trailer N] [-keepalive]
//	    Runs a session (listen: one per accepted connection) that serves every accepted stream
//	    (see SERVICES). Prints {"event":"ready"} once listening / connected. Runs until killed,
//	    or "quit" on stdin. -accept=false: streams are not accepted (no ACK) until the "accept"
//	    command; with -backlog 1 the second pending SYN is answered with RST, the only way to
//	    make this yamux version send RST. -goaway-after N: send GoAway once N streams of a
//	    session have been accepted. -trailer: see CLIENT SIDE (for the "open" command).
//
//	yamux-peer load   (-listen PATH | -connect PATH) [-role client|server] [-streams 100]
//	                  [-concurrency 0] [-max-size 65536] [-big 0] [-big-size 16777216]
//	                  [-seed 1] [-workload echo|sink|source|mixed] [-trailer 0] [-goaway]
//	    Workload against a peer that serves SERVICES (the TS test server): -streams streams
//	    (at most -concurrency at once; 0 = all), -big of them of -big-size bytes, the others of
//	    a log-uniform size in [0, -max-size]. Each stream's bytes are checked by sha256 (see
//	    CLIENT SIDE). -goaway sends GoAway after the last stream was opened. Prints
//	    {"event":"result","streams","ok","errors","bytes","seconds","mibPerSec","logErrors",
//	    "sessionAlive","failures":[...]} and exits 0 only if every stream matched, yamux logged
//	    no [ERR] and the session was still alive at the end. Serves SERVICES on inbound streams too.
//
//	yamux-peer bench  [-mib 16] [-streams 1,64] [-dir up,down,echo]
//	    Go client <-> Go server over a real Unix socket in a temp dir, one session per run.
//	    up = "sink <n>", down = "source <n> <seed>", echo = "echo <n>". Inside the timing each
//	    byte is generated once (sender) and hashed once (receiver: the server for up, the client
//	    for down and echo); expected digests are computed beforehand. With -verify=false nothing
//	    is hashed: up = "discard <n>", down and echo only count. One line per run:
//	    {"event":"bench","peer":"go-go","dir","streams","mibPerStream","seconds","mibPerSec"},
//	    mibPerSec = mibPerStream * streams / seconds (echo counts each byte once).
//
//	yamux-peer ping   (-listen PATH | -connect PATH) [-role client] [-count 5]
//	    Pings the peer -count times: {"event":"ping","seq","rttMs"} each, then
//	    {"event":"result","count","minMs","avgMs","maxMs"}.
//
//	yamux-peer gen <n> <seed>
//	    Writes the first n bytes of generator stream <seed> to stdout (raw bytes).
//
//	yamux-peer record (-listen PATH | -connect PATH) [-role client] [-data hello]
//	    The frame-comparison script: Open a stream, Write(-data), Close it, Ping (the other end
//	    must answer), then close the session. Prints {"event":"record-done","rttMs"}.
//
// STDIN COMMANDS (serve and load), one per line, applied to every live session:
//
//	ping | goaway | close | stats | accept | release | quit
//	open <service line>   open a stream and run the CLIENT SIDE of that service, e.g.
//	                      "open echo 1000 7"; prints {"event":"open-result",...}
//
// SERVICES: the first line of an accepted stream names what to do with it. Replies are sent
// before Close(); this yamux version's Read() after its own Close() returns EOF whenever its
// buffer is momentarily empty, so every service reads what it needs before it closes.
//
//	echo            copy back until EOF, then Close
//	echo <n>        copy back exactly n bytes, then Close (no wait for EOF)
//	sink            read to EOF, reply "<sha256hex> <count>\n", Close
//	sink <n>        read exactly n bytes, reply, Close
//	discard [n]     like sink without hashing (for timed benchmarks): reply "<count>\n", Close
//	source <n> <s>  write n bytes of xorshift32 stream <s> (see GENERATOR), Close
//	slow <bps>      like sink, but read at most <bps> bytes per second
//	hold [ms]       read nothing until the "release" command (or ms elapsed), then like sink
//	fin-first <n> <s> <m>  write n bytes of stream <s>, Close (FIN first), then read exactly m
//	                more bytes (working around the Read bug) and report them in the event
//
// When a served stream ends, {"event":"stream","session","stream","service","in","out",
// "inSha256","err"} is printed (err "" when clean). When a session ends:
// {"event":"session-closed","session"} at once and {"event":"session-end","session","err"}
// from its accept loop (err "EOF" when the other side just closed the connection).
//
// CLIENT SIDE of a service (load, open): "echo <n>": write the line and n bytes of stream
// <seed>, read n bytes back and EOF, compare sha256; "sink <n>": write line + data, read the
// reply line and EOF, compare; "source <n> <seed>": read to EOF, compare with the generator,
// then write -trailer bytes of stream <seed+1>. Close() only after EOF was read.
//
// GENERATOR: xorshift32, x = seed (0 means 0x9E3779B9); per 4 bytes: x ^= x<<13; x ^= x>>17;
// x ^= x<<5; emit x little-endian; the last word is truncated to n. (test/helpers/data.ts)
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"hash"
	"io"
	"io/ioutil"
	"log"
	"math"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/yamux"
)

// ---- events ------------------------------------------------------------------------------

var outMu sync.Mutex

type ev map[string]interface{}

// quiet suppresses the per-session and per-stream events (bench).
var quiet int32

func emit(e ev) {
	if atomic.LoadInt32(&quiet) == 1 {
		switch e["event"] {
		case "session", "stream", "session-end", "session-closed":
			return
		}
	}
	b, err := json.Marshal(e)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"event":"internal-error","err":%q}`, err.Error()))
	}
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func fatal(format string, args ...interface{}) {
	emit(ev{"event": "fatal", "err": fmt.Sprintf(format, args...)})
	os.Exit(2)
}

var logErrors int64

// logWriter turns hashicorp's log lines into events and counts the [ERR] ones.
type logWriter struct{ session int }

func (w logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimRight(string(p), "\n")
	if strings.Contains(msg, "[ERR]") {
		atomic.AddInt64(&logErrors, 1)
	}
	emit(ev{"event": "log", "session": w.session, "msg": msg})
	return len(p), nil
}

// ---- generator ---------------------------------------------------------------------------

type gen struct {
	x   uint32
	buf [4]byte
	off int
}

func newGen(seed uint32) *gen {
	if seed == 0 {
		seed = 0x9E3779B9
	}
	return &gen{x: seed, off: 4}
}

func (g *gen) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && g.off < 4 {
		p[n] = g.buf[g.off]
		g.off++
		n++
	}
	x := g.x
	for len(p)-n >= 4 {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		binary.LittleEndian.PutUint32(p[n:], x)
		n += 4
	}
	if n < len(p) {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		binary.LittleEndian.PutUint32(g.buf[:], x)
		g.off = 0
		for n < len(p) {
			p[n] = g.buf[g.off]
			g.off++
			n++
		}
	}
	g.x = x
	return n, nil
}

func genDigest(n int64, seed uint32) string {
	h := sha256.New()
	io.CopyBuffer(h, io.LimitReader(newGen(seed), n), make([]byte, 64*1024))
	return hex.EncodeToString(h.Sum(nil))
}

// ---- session setup -----------------------------------------------------------------------

type sessionOpts struct {
	role         string
	backlog      int
	window       uint
	writeTimeout int
	keepalive    bool
}

func (o *sessionOpts) register(fs *flag.FlagSet, role string) {
	fs.StringVar(&o.role, "role", role, "yamux role: server (even stream ids) or client (odd)")
	fs.IntVar(&o.backlog, "backlog", 256, "AcceptBacklog")
	fs.UintVar(&o.window, "window", 256*1024, "MaxStreamWindowSize")
	fs.IntVar(&o.writeTimeout, "write-timeout", 10000, "ConnectionWriteTimeout in ms")
	fs.BoolVar(&o.keepalive, "keepalive", false, "EnableKeepAlive")
}

var sessionSeq int64

func newSession(conn net.Conn, o *sessionOpts) (*yamux.Session, int) {
	id := int(atomic.AddInt64(&sessionSeq, 1))
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = o.keepalive
	cfg.AcceptBacklog = o.backlog
	cfg.MaxStreamWindowSize = uint32(o.window)
	cfg.ConnectionWriteTimeout = time.Duration(o.writeTimeout) * time.Millisecond
	cfg.LogOutput = nil
	cfg.Logger = log.New(logWriter{id}, "", 0)
	var s *yamux.Session
	var err error
	if o.role == "client" {
		s, err = yamux.Client(conn, cfg)
	} else if o.role == "server" {
		s, err = yamux.Server(conn, cfg)
	} else {
		fatal("bad -role %q", o.role)
	}
	if err != nil {
		fatal("yamux: %v", err)
	}
	return s, id
}

// connections yields the connection(s): each accepted one (listen) or one dialled (connect).
func connections(listen, connect string) <-chan net.Conn {
	ch := make(chan net.Conn)
	if (listen == "") == (connect == "") {
		fatal("exactly one of -listen and -connect is required")
	}
	if listen != "" {
		os.Remove(listen)
		l, err := net.Listen("unix", listen)
		if err != nil {
			fatal("listen: %v", err)
		}
		emit(ev{"event": "ready", "listen": listen, "pid": os.Getpid()})
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					fatal("accept: %v", err)
				}
				ch <- c
			}
		}()
		return ch
	}
	go func() {
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("unix", connect)
			if err == nil {
				ch <- c
				return
			}
			if time.Now().After(deadline) {
				fatal("connect: %v", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return ch
}

// ---- the serving side --------------------------------------------------------------------

type peer struct {
	opts        sessionOpts
	goawayAfter int
	mu          sync.Mutex
	sessions    map[int]*yamux.Session
	acceptGate  chan struct{}
	gateOnce    sync.Once
	release     chan struct{}
	releaseOnce sync.Once
	trailer     int64
}

func newPeer() *peer {
	return &peer{sessions: map[int]*yamux.Session{}, acceptGate: make(chan struct{}), release: make(chan struct{})}
}

func (p *peer) openGate()    { p.gateOnce.Do(func() { close(p.acceptGate) }) }
func (p *peer) releaseHeld() { p.releaseOnce.Do(func() { close(p.release) }) }

func (p *peer) each(f func(id int, s *yamux.Session)) {
	p.mu.Lock()
	list := make(map[int]*yamux.Session, len(p.sessions))
	for id, s := range p.sessions {
		list[id] = s
	}
	p.mu.Unlock()
	for id, s := range list {
		f(id, s)
	}
}

// register makes the session visible to stdin commands, then announces it:
// {"event":"session","session","role"} means commands will reach it.
func (p *peer) register(id int, s *yamux.Session) {
	p.mu.Lock()
	p.sessions[id] = s
	p.mu.Unlock()
	emit(ev{"event": "session", "session": id, "role": p.opts.role})
}

// runSession accepts (and serves) the streams of a registered session until it ends.
func (p *peer) runSession(s *yamux.Session, id int) {
	defer func() {
		p.mu.Lock()
		delete(p.sessions, id)
		p.mu.Unlock()
	}()
	go func() {
		// hashicorp df201c7 leaks its recvLock on ErrRecvWindowExceeded, so AcceptStream (below)
		// can hang on a dead session: report the end from here too.
		<-s.CloseChan()
		emit(ev{"event": "session-closed", "session": id})
	}()
	accepted := 0
	for {
		select {
		case <-p.acceptGate:
		case <-s.CloseChan():
		}
		st, err := s.AcceptStream()
		if err != nil {
			emit(ev{"event": "session-end", "session": id, "err": errString(err)})
			return
		}
		accepted++
		go serveStream(p, id, st)
		if p.goawayAfter > 0 && accepted == p.goawayAfter {
			err := s.GoAway()
			emit(ev{"event": "goaway-sent", "session": id, "err": errString(err)})
		}
	}
}

type streamReport struct {
	session int
	stream  uint32
	service string
	in, out int64
	inHash  hash.Hash
	extra   ev
}

func (r *streamReport) emit(err error) {
	e := ev{"event": "stream", "session": r.session, "stream": r.stream, "service": r.service,
		"in": r.in, "out": r.out, "inSha256": hex.EncodeToString(r.inHash.Sum(nil)), "err": errString(err)}
	for k, v := range r.extra {
		e[k] = v
	}
	emit(e)
}

// countingReader hashes and counts what is read through it.
type countingReader struct {
	r io.Reader
	h hash.Hash
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.h != nil {
		c.h.Write(p[:n])
	}
	*c.n += int64(n)
	return n, err
}

func serveStream(p *peer, session int, st *yamux.Stream) {
	rep := &streamReport{session: session, stream: st.StreamID(), inHash: sha256.New(), extra: ev{}}
	br := bufio.NewReaderSize(st, 64*1024)
	line, err := br.ReadString('\n')
	if err != nil {
		rep.service = "?"
		rep.emit(fmt.Errorf("reading service line: %v", err))
		st.Close()
		return
	}
	f := strings.Fields(line)
	if len(f) == 0 {
		f = []string{""}
	}
	rep.service = f[0]
	in := countingReader{br, rep.inHash, &rep.in}
	num := func(i int) int64 {
		if i >= len(f) {
			return -1
		}
		v, e := strconv.ParseInt(f[i], 10, 64)
		if e != nil {
			return -1
		}
		return v
	}
	write := func(r io.Reader, n int64) error {
		k, err := io.CopyBuffer(st, io.LimitReader(r, n), make([]byte, 64*1024))
		rep.out += k
		if err == nil && k < n {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	reply := func() error {
		msg := fmt.Sprintf("%s %d\n", hex.EncodeToString(rep.inHash.Sum(nil)), rep.in)
		k, err := st.Write([]byte(msg))
		rep.out += int64(k)
		return err
	}
	readN := func(n int64) error {
		var err error
		if n < 0 {
			_, err = io.Copy(ioutil.Discard, in)
		} else {
			var k int64
			k, err = io.Copy(ioutil.Discard, io.LimitReader(in, n))
			if err == nil && k < n {
				err = io.ErrUnexpectedEOF
			}
		}
		return err
	}

	switch f[0] {
	case "echo":
		n := num(1)
		if n < 0 {
			k, e := io.CopyBuffer(st, in, make([]byte, 64*1024))
			rep.out, err = k, e
		} else {
			err = write(in, n)
		}
	case "sink":
		if err = readN(num(1)); err == nil {
			err = reply()
		}
	case "discard":
		// Go 1.19's sha256 does ~300 MiB/s here: a hashing sink would be the bottleneck it measures.
		in = countingReader{br, nil, &rep.in}
		if err = readN(num(1)); err == nil {
			k, e := fmt.Fprintf(st, "%d\n", rep.in)
			rep.out, err = int64(k), e
		}
	case "source":
		n, seed := num(1), num(2)
		if n < 0 || seed < 0 {
			err = fmt.Errorf("usage: source <n> <seed>")
			break
		}
		err = write(newGen(uint32(seed)), n)
	case "slow":
		bps := num(1)
		if bps <= 0 {
			err = fmt.Errorf("usage: slow <bytesPerSec>")
			break
		}
		chunk := bps / 20
		if chunk < 1 {
			chunk = 1
		}
		if chunk > 16*1024 {
			chunk = 16 * 1024
		}
		buf := make([]byte, chunk)
		for {
			k, e := in.Read(buf)
			if k > 0 {
				time.Sleep(time.Duration(float64(k) / float64(bps) * float64(time.Second)))
			}
			if e == io.EOF {
				break
			}
			if e != nil {
				err = e
				break
			}
		}
		if err == nil {
			err = reply()
		}
	case "hold":
		var timeout <-chan time.Time
		if ms := num(1); ms >= 0 {
			timeout = time.After(time.Duration(ms) * time.Millisecond)
		}
		select {
		case <-p.release:
		case <-timeout:
		case <-st.Session().CloseChan():
		}
		if err = readN(-1); err == nil {
			err = reply()
		}
	case "fin-first":
		n, seed, m := num(1), num(2), num(3)
		if n < 0 || seed < 0 || m < 0 {
			err = fmt.Errorf("usage: fin-first <n> <seed> <m>")
			break
		}
		if err = write(newGen(uint32(seed)), n); err != nil {
			break
		}
		st.Close()
		err = readAfterClose(in, m, 10*time.Second)
		rep.emit(err)
		return
	default:
		err = fmt.Errorf("unknown service %q", f[0])
	}
	st.Close()
	rep.emit(err)
}

// readAfterClose reads exactly m bytes from a stream we already closed. hashicorp df201c7's
// Read returns io.EOF in that state whenever its buffer is momentarily empty, so EOF is only
// believed once the deadline passed.
func readAfterClose(r io.Reader, m int64, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	buf := make([]byte, 32*1024)
	var got int64
	for got < m {
		want := int64(len(buf))
		if m-got < want {
			want = m - got
		}
		k, err := r.Read(buf[:want])
		got += int64(k)
		if err == io.EOF {
			if time.Now().After(deadline) {
				return fmt.Errorf("EOF after %d of %d bytes", got, m)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ---- the client side of services ---------------------------------------------------------

type clientResult struct {
	Kind     string `json:"kind"`
	Stream   uint32 `json:"stream"`
	Size     int64  `json:"size"`
	BytesIn  int64  `json:"in"`
	BytesOut int64  `json:"out"`
	Err      string `json:"err"`
}

// runClient opens a stream and runs the client side of a service against it.
func runClient(s *yamux.Session, kind string, n int64, seed uint32, trailer int64) (res clientResult) {
	res = clientResult{Kind: kind, Size: n}
	st, err := s.OpenStream()
	if err != nil {
		res.Err = "open: " + err.Error()
		return
	}
	res.Stream = st.StreamID()
	defer st.Close()
	fail := func(format string, args ...interface{}) clientResult {
		res.Err = fmt.Sprintf(format, args...)
		return res
	}
	switch kind {
	case "echo", "sink":
		if _, err := fmt.Fprintf(st, "%s %d\n", kind, n); err != nil {
			return fail("write line: %v", err)
		}
		sent := sha256.New()
		werr := make(chan error, 1)
		go func() {
			k, err := io.CopyBuffer(st, io.TeeReader(io.LimitReader(newGen(seed), n), sent), make([]byte, 64*1024))
			atomic.AddInt64(&res.BytesOut, k)
			werr <- err
		}()
		got := sha256.New()
		var reply []byte
		var rerr error
		if kind == "echo" {
			var k int64
			k, rerr = io.CopyBuffer(got, st, make([]byte, 64*1024))
			res.BytesIn = k
		} else {
			reply, rerr = ioutil.ReadAll(st)
			res.BytesIn = int64(len(reply))
		}
		var err error
		select {
		case err = <-werr:
		case <-time.After(10 * time.Second):
			st.Close() // wakes a writer stuck on a window the peer will never open
			err = <-werr
		}
		if err != nil {
			return fail("write: %v", err)
		}
		if rerr != nil {
			return fail("read: %v", rerr)
		}
		want := hex.EncodeToString(sent.Sum(nil))
		if kind == "echo" {
			if res.BytesIn != n || hex.EncodeToString(got.Sum(nil)) != want {
				return fail("echo mismatch: got %d bytes, sha %s", res.BytesIn, hex.EncodeToString(got.Sum(nil)))
			}
		} else if string(reply) != fmt.Sprintf("%s %d\n", want, n) {
			return fail("sink reply %q, want %s %d", string(reply), want, n)
		}
	case "source":
		if _, err := fmt.Fprintf(st, "source %d %d\n", n, seed); err != nil {
			return fail("write line: %v", err)
		}
		got := sha256.New()
		k, err := io.CopyBuffer(got, st, make([]byte, 64*1024))
		res.BytesIn = k
		if err != nil {
			return fail("read: %v", err)
		}
		if k != n || hex.EncodeToString(got.Sum(nil)) != genDigest(n, seed) {
			return fail("source mismatch: got %d bytes", k)
		}
		if trailer > 0 {
			k, err := io.CopyBuffer(st, io.LimitReader(newGen(seed+1), trailer), make([]byte, 64*1024))
			res.BytesOut += k
			if err != nil {
				return fail("write trailer: %v", err)
			}
		}
	default:
		return fail("unknown client service %q", kind)
	}
	return res
}

// ---- stdin commands ----------------------------------------------------------------------

func (p *peer) commands() {
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "quit":
			emit(ev{"event": "bye"})
			os.Exit(0)
		case "accept":
			p.openGate()
			emit(ev{"event": "accepting"})
		case "release":
			p.releaseHeld()
			emit(ev{"event": "released"})
		case "ping":
			p.each(func(id int, s *yamux.Session) {
				rtt, err := s.Ping()
				emit(ev{"event": "ping", "session": id, "rttMs": float64(rtt.Microseconds()) / 1000, "err": errString(err)})
			})
		case "goaway":
			p.each(func(id int, s *yamux.Session) {
				emit(ev{"event": "goaway-sent", "session": id, "err": errString(s.GoAway())})
			})
		case "close":
			p.each(func(id int, s *yamux.Session) { s.Close() })
			emit(ev{"event": "closed"})
		case "stats":
			p.each(func(id int, s *yamux.Session) {
				emit(ev{"event": "stats", "session": id, "streams": s.NumStreams(), "closed": s.IsClosed(),
					"logErrors": atomic.LoadInt64(&logErrors)})
			})
			emit(ev{"event": "stats-done", "logErrors": atomic.LoadInt64(&logErrors)})
		case "open":
			if len(f) < 3 {
				emit(ev{"event": "open-result", "err": "usage: open <kind> <n> [seed]"})
				continue
			}
			n, _ := strconv.ParseInt(f[2], 10, 64)
			var seed uint64 = 1
			if len(f) > 3 {
				seed, _ = strconv.ParseUint(f[3], 10, 32)
			}
			p.each(func(id int, s *yamux.Session) {
				go func() {
					r := runClient(s, f[1], n, uint32(seed), p.trailer)
					emit(ev{"event": "open-result", "session": id, "kind": r.Kind, "stream": r.Stream,
						"in": r.BytesIn, "out": r.BytesOut, "err": r.Err})
				}()
			})
		default:
			emit(ev{"event": "unknown-command", "cmd": f[0]})
		}
	}
}

// ---- commands ----------------------------------------------------------------------------

func cmdServe(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	p := newPeer()
	p.opts.register(fs, "server")
	listen := fs.String("listen", "", "listen on this Unix socket path")
	connect := fs.String("connect", "", "connect to this Unix socket path")
	accept := fs.Bool("accept", true, "accept streams (false: wait for the accept command)")
	fs.IntVar(&p.goawayAfter, "goaway-after", 0, "send GoAway after accepting N streams")
	fs.Int64Var(&p.trailer, "trailer", 0, "bytes written after a source reply (open command)")
	fs.Parse(args)
	if *accept {
		p.openGate()
	}
	conns := connections(*listen, *connect)
	go p.commands()
	for c := range conns {
		s, id := newSession(c, &p.opts)
		p.register(id, s)
		if *connect != "" {
			emit(ev{"event": "ready", "connect": *connect, "pid": os.Getpid()})
		}
		go p.runSession(s, id)
	}
}

func cmdLoad(args []string) {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	p := newPeer()
	p.opts.register(fs, "client")
	listen := fs.String("listen", "", "listen on this Unix socket path (one connection)")
	connect := fs.String("connect", "", "connect to this Unix socket path")
	streams := fs.Int("streams", 100, "number of streams")
	concurrency := fs.Int("concurrency", 0, "streams at once (0: all)")
	maxSize := fs.Int64("max-size", 64*1024, "largest size of an ordinary stream")
	big := fs.Int("big", 0, "how many streams are of -big-size")
	bigSize := fs.Int64("big-size", 16*1024*1024, "size of the big streams")
	seed := fs.Int64("seed", 1, "seed of sizes and data")
	workload := fs.String("workload", "echo", "echo | sink | source | mixed")
	goaway := fs.Bool("goaway", false, "send GoAway once every stream was opened")
	fs.Int64Var(&p.trailer, "trailer", 0, "source: bytes written after reading the reply")
	fs.Parse(args)
	p.openGate()

	c := <-connections(*listen, *connect)
	s, id := newSession(c, &p.opts)
	p.register(id, s)
	go p.runSession(s, id)
	go p.commands()
	if *connect != "" {
		emit(ev{"event": "ready", "connect": *connect, "pid": os.Getpid()})
	}

	rng := rand.New(rand.NewSource(*seed))
	type job struct {
		kind string
		n    int64
		seed uint32
	}
	jobs := make([]job, *streams)
	kinds := []string{"echo", "sink", "source"}
	for i := range jobs {
		var n int64
		if i < *big {
			n = *bigSize - rng.Int63n(*bigSize/16+1)
		} else {
			n = int64(math.Exp(rng.Float64()*math.Log(float64(*maxSize)+1))) - 1
		}
		kind := *workload
		if kind == "mixed" {
			kind = kinds[rng.Intn(len(kinds))]
		}
		jobs[i] = job{kind, n, rng.Uint32()}
	}
	rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })

	limit := *concurrency
	if limit <= 0 {
		limit = len(jobs)
	}
	sem := make(chan struct{}, limit)
	results := make([]clientResult, len(jobs))
	var wg sync.WaitGroup
	start := time.Now()
	for i, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int, j job) {
			defer wg.Done()
			results[i] = runClient(s, j.kind, j.n, j.seed, p.trailer)
			<-sem
		}(i, j)
	}
	if *goaway {
		// Let the last SYNs leave first: GoAway only forbids new streams.
		time.Sleep(10 * time.Millisecond)
		emit(ev{"event": "goaway-sent", "session": id, "err": errString(s.GoAway())})
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	var total int64
	ok := 0
	failures := []clientResult{}
	for _, r := range results {
		total += r.BytesIn + r.BytesOut
		if r.Err == "" {
			ok++
		} else if len(failures) < 10 {
			failures = append(failures, r)
		}
	}
	alive := !s.IsClosed()
	logErrs := atomic.LoadInt64(&logErrors)
	emit(ev{"event": "result", "streams": len(jobs), "ok": ok, "errors": len(jobs) - ok, "bytes": total,
		"seconds": secs, "mibPerSec": float64(total) / (1 << 20) / secs, "logErrors": logErrs,
		"sessionAlive": alive, "failures": failures})
	s.Close()
	if ok != len(jobs) || logErrs > 0 || !alive {
		os.Exit(1)
	}
	os.Exit(0)
}

func cmdPing(args []string) {
	fs := flag.NewFlagSet("ping", flag.ExitOnError)
	var o sessionOpts
	o.register(fs, "client")
	listen := fs.String("listen", "", "listen on this Unix socket path")
	connect := fs.String("connect", "", "connect to this Unix socket path")
	count := fs.Int("count", 5, "number of pings")
	fs.Parse(args)
	s, _ := newSession(<-connections(*listen, *connect), &o)
	min, max, sum := math.Inf(1), 0.0, 0.0
	for i := 0; i < *count; i++ {
		rtt, err := s.Ping()
		if err != nil {
			emit(ev{"event": "ping", "seq": i, "err": err.Error()})
			os.Exit(1)
		}
		ms := float64(rtt.Microseconds()) / 1000
		emit(ev{"event": "ping", "seq": i, "rttMs": ms})
		min, max, sum = math.Min(min, ms), math.Max(max, ms), sum+ms
	}
	emit(ev{"event": "result", "count": *count, "minMs": min, "avgMs": sum / float64(*count), "maxMs": max})
	s.Close()
}

func cmdRecord(args []string) {
	fs := flag.NewFlagSet("record", flag.ExitOnError)
	var o sessionOpts
	o.register(fs, "client")
	listen := fs.String("listen", "", "listen on this Unix socket path")
	connect := fs.String("connect", "", "connect to this Unix socket path")
	data := fs.String("data", "hello", "what to write on the stream")
	fs.Parse(args)
	s, _ := newSession(<-connections(*listen, *connect), &o)
	st, err := s.OpenStream()
	if err != nil {
		fatal("open: %v", err)
	}
	if _, err := st.Write([]byte(*data)); err != nil {
		fatal("write: %v", err)
	}
	if err := st.Close(); err != nil {
		fatal("close: %v", err)
	}
	rtt, err := s.Ping()
	if err != nil {
		fatal("ping: %v", err)
	}
	emit(ev{"event": "record-done", "stream": st.StreamID(), "rttMs": float64(rtt.Microseconds()) / 1000})
	s.Close()
}

func cmdBench(args []string) {
	fs := flag.NewFlagSet("bench", flag.ExitOnError)
	mib := fs.Int64("mib", 16, "MiB per stream")
	streamList := fs.String("streams", "1,64", "comma-separated stream counts")
	dirList := fs.String("dir", "up", "comma-separated directions: up, down, echo")
	verify := fs.Bool("verify", true, "hash every byte (false: up uses discard, down and echo only count)")
	fs.Parse(args)

	dir, err := ioutil.TempDir("", "yxb")
	if err != nil {
		fatal("tempdir: %v", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "s")
	l, err := net.Listen("unix", path)
	if err != nil {
		fatal("listen: %v", err)
	}
	srv := newPeer()
	srv.opts = sessionOpts{role: "server", backlog: 256, window: 256 * 1024, writeTimeout: 30000}
	srv.openGate()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, id := newSession(c, &srv.opts)
			srv.register(id, s)
			go srv.runSession(s, id)
		}
	}()
	atomic.StoreInt32(&quiet, 1)
	n := *mib << 20
	const seed = 42
	want := ""
	if *verify {
		want = genDigest(n, seed)
	}
	for _, d := range strings.Split(*dirList, ",") {
		for _, sc := range strings.Split(*streamList, ",") {
			count, err := strconv.Atoi(sc)
			if err != nil || count <= 0 {
				fatal("bad -streams %q", sc)
			}
			c, err := net.Dial("unix", path)
			if err != nil {
				fatal("dial: %v", err)
			}
			cs, _ := newSession(c, &sessionOpts{role: "client", backlog: 256, window: 256 * 1024, writeTimeout: 30000})
			var kind string
			switch d {
			case "up":
				kind = "sink"
				if !*verify {
					kind = "discard"
				}
			case "down":
				kind = "source"
			case "echo":
				kind = "echo"
			default:
				fatal("bad -dir %q", d)
			}
			var failed int64
			var wg sync.WaitGroup
			start := time.Now()
			for i := 0; i < count; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					r := benchStream(cs, kind, n, seed, want, *verify)
					if r.Err != "" {
						atomic.AddInt64(&failed, 1)
						emit(ev{"event": "bench-error", "err": r.Err})
					}
				}()
			}
			wg.Wait()
			secs := time.Since(start).Seconds()
			cs.Close()
			emit(ev{"event": "bench", "peer": "go-go", "dir": d, "streams": count, "mibPerStream": *mib,
				"seconds": secs, "mibPerSec": float64(*mib) * float64(count) / secs, "errors": failed})
		}
	}
}

// benchStream is the client side of one benchmark stream. Every byte is generated once (by its
// sender) and hashed once (by its receiver); expected digests are computed before the timing.
func benchStream(s *yamux.Session, kind string, n int64, seed uint32, want string, verify bool) clientResult {
	res := clientResult{Kind: kind, Size: n}
	st, err := s.OpenStream()
	if err != nil {
		res.Err = err.Error()
		return res
	}
	defer st.Close()
	if kind == "source" {
		fmt.Fprintf(st, "source %d %d\n", n, seed)
	} else {
		fmt.Fprintf(st, "%s %d\n", kind, n)
		go io.CopyBuffer(st, io.LimitReader(newGen(seed), n), make([]byte, 64*1024))
	}
	if kind == "sink" {
		reply, err := ioutil.ReadAll(st)
		if err != nil || string(reply) != fmt.Sprintf("%s %d\n", want, n) {
			res.Err = fmt.Sprintf("sink reply %q, err %v", reply, err)
		}
		return res
	}
	if kind == "discard" {
		reply, err := ioutil.ReadAll(st)
		if err != nil || string(reply) != fmt.Sprintf("%d\n", n) {
			res.Err = fmt.Sprintf("discard reply %q, err %v", reply, err)
		}
		return res
	}
	h := sha256.New()
	var into io.Writer = ioutil.Discard
	if verify {
		into = h
	}
	k, err := io.CopyBuffer(into, st, make([]byte, 64*1024))
	if err != nil || k != n || (verify && hex.EncodeToString(h.Sum(nil)) != want) {
		res.Err = fmt.Sprintf("%s mismatch: %d bytes, err %v", kind, k, err)
	}
	return res
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: yamux-peer serve|load|bench|ping|record [flags] (see the comment atop main.go)")
		os.Exit(2)
	}
	args := os.Args[2:]
	switch os.Args[1] {
	case "serve":
		cmdServe(args)
	case "load":
		cmdLoad(args)
	case "bench":
		cmdBench(args)
	case "ping":
		cmdPing(args)
	case "record":
		cmdRecord(args)
	case "gen":
		// gen <n> <seed>: the raw generator bytes on stdout (checks test/helpers/data.ts).
		if len(args) != 2 {
			fatal("usage: gen <n> <seed>")
		}
		n, _ := strconv.ParseInt(args[0], 10, 64)
		seed, _ := strconv.ParseUint(args[1], 10, 32)
		w := bufio.NewWriter(os.Stdout)
		io.Copy(w, io.LimitReader(newGen(uint32(seed)), n))
		w.Flush()
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}
