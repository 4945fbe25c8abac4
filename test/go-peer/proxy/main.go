// go-proxy: the Go kata-proxy's data path, as a yardstick for the bench (bench/peers.ts starts it
// beside bin/kata-proxy, with the same argv, against the same Go peer). It does what
// kata-containers/proxy's proxy.go does and nothing else: one hashicorp/yamux client session on the
// guest socket (keepalive off, 1 s connection write timeout, one Ping per second), and every accepted
// connection becomes session.Open() plus io.Copy both ways, both ends closed when either direction
// ends. Logging (logrus, syslog) is left out: it is not on the data path. Not part of the product.
//
// Build: as the Go peer (test/go-peer/build.ts), package ./test/go-peer/proxy.
package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/yamux"
)

func fatal(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go-proxy: "+format+"\n", args...)
	os.Exit(1)
}

func unixPath(arg string) string {
	if strings.HasPrefix(arg, "unix://") {
		return strings.TrimPrefix(arg, "unix://")
	}
	if strings.Contains(arg, "://") {
		fatal("invalid socket scheme: %s", arg)
	}
	return arg
}

func heartBeat(session *yamux.Session) {
	for !session.IsClosed() {
		session.Ping()
		time.Sleep(time.Second)
	}
}

func proxyConn(conn net.Conn, stream net.Conn) {
	var once sync.Once
	cleanup := func() {
		conn.Close()
		stream.Close()
	}
	copyStream := func(dst io.Writer, src io.Reader) {
		io.Copy(dst, src)
		once.Do(cleanup)
	}
	go copyStream(conn, stream)
	go copyStream(stream, conn)
}

func main() {
	muxSocket := flag.String("mux-socket", "", "unix socket to multiplex on")
	listenSocket := flag.String("listen-socket", "", "listen socket to accept connections")
	agentLogsSocket := flag.String("agent-logs-socket", "", "socket to read agent logs")
	flag.String("log", "warn", "log level (accepted, nothing is logged)")
	flag.String("sandbox", "", "sandbox ID")
	flag.Bool("debug", false, "accepted for compatibility")
	version := flag.Bool("version", false, "display program version and exit")
	flag.Parse()
	if *version {
		fmt.Println("kata-proxy version 0.0.0-go-reference")
		return
	}
	if *muxSocket == "" || *listenSocket == "" {
		fmt.Fprintln(os.Stderr, "go-proxy: -mux-socket and -listen-socket are required")
		os.Exit(2)
	}
	if *agentLogsSocket != "" {
		console, err := net.Dial("unix", unixPath(*agentLogsSocket))
		if err != nil {
			fatal("agent logs socket: %v", err)
		}
		go io.Copy(io.Discard, console)
	}

	guest, err := net.Dial("unix", unixPath(*muxSocket))
	if err != nil {
		fatal("mux socket: %v", err)
	}
	cfg := yamux.DefaultConfig()
	cfg.EnableKeepAlive = false
	cfg.ConnectionWriteTimeout = time.Second
	cfg.LogOutput = io.Discard
	session, err := yamux.Client(guest, cfg)
	if err != nil {
		fatal("yamux: %v", err)
	}
	go heartBeat(session)

	l, err := net.Listen("unix", unixPath(*listenSocket))
	if err != nil {
		fatal("listen: %v", err)
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	stopping := make(chan struct{})
	go func() {
		<-signals
		close(stopping)
		l.Close()
		session.Close()
		os.Exit(0)
	}()
	for {
		conn, err := l.Accept()
		if err != nil {
			select {
			case <-stopping:
				select {} // the signal handler exits
			default:
				fatal("accept: %v", err)
			}
		}
		stream, err := session.Open()
		if err != nil {
			conn.Close()
			fatal("open stream: %v", err)
		}
		go proxyConn(conn, stream)
	}
}
