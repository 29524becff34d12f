package connlimit

import (
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/auditpipe/auditpipe/internal/connlimit/connlimittest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestLimit: past the limit, a new connection closes the oldest
// evictable one; with none evictable it is closed itself; Accept never
// blocks on the limit (review finding F5: a full listener must not keep
// newcomers out for as long as someone holds it full).
func TestLimit(t *testing.T) {
	const max = 3
	for _, tc := range []struct {
		name string
		// busy[i]: the i-th server connection is marked not evictable.
		busy []bool
		// closedClients: which client connections (0..max) the server
		// has closed after the (max+1)-th connection.
		closedClients []bool
		evicted       int64
		refused       int64
	}{
		{"all evictable: the oldest goes", []bool{false, false, false}, []bool{true, false, false, false}, 1, 0},
		{"the oldest busy: the next goes", []bool{true, false, false}, []bool{false, true, false, false}, 1, 0},
		{"all busy: the newcomer goes", []bool{true, true, true}, []bool{false, false, false, true}, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			l := New(raw, max)
			defer l.Close()
			accepted := make(chan net.Conn, max+1)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						close(accepted)
						return
					}
					accepted <- c
				}
			}()
			var clients, servers []net.Conn
			defer func() {
				for _, c := range append(clients, servers...) {
					c.Close()
				}
			}()
			for i := range max + 1 {
				c, err := net.Dial("tcp", raw.Addr().String())
				if err != nil {
					t.Fatal(err)
				}
				clients = append(clients, c)
				if i < max {
					s := <-accepted
					servers = append(servers, s)
					Of(s).SetEvictable(!tc.busy[i])
				}
			}
			if tc.refused == 0 {
				servers = append(servers, <-accepted)
			}
			for i, want := range tc.closedClients {
				if got := connlimittest.ClosedBy(clients[i], time.Now().Add(200*time.Millisecond)); got != want {
					t.Errorf("client %d closed by the server: %v, want %v", i, got, want)
				}
			}
			if l.Open() != max || l.Evicted() != tc.evicted || l.Refused() != tc.refused {
				t.Errorf("open %d evicted %d refused %d, want %d %d %d", l.Open(), l.Evicted(), l.Refused(), max, tc.evicted, tc.refused)
			}
			// A place freed by a Close is taken by the next connection.
			servers[len(servers)-1].Close()
			c, err := net.Dial("tcp", raw.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
			servers = append(servers, <-accepted)
			if l.Open() != max {
				t.Errorf("after a close and a new connection: open %d, want %d", l.Open(), max)
			}
		})
	}
}

func TestOf(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Of(a) != nil {
		t.Error("Of of a plain connection is not nil")
	}
	c := &Conn{Conn: a}
	if Of(c) != c {
		t.Error("Of(*Conn) is not itself")
	}
	if Of(wrapped{c}) != c {
		t.Error("Of does not unwrap NetConn")
	}
}

type wrapped struct{ net.Conn }

func (w wrapped) NetConn() net.Conn { return w.Conn }

func TestCap(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{{20000, 5000}, {1024, 256}, {32, 16}, {0, 16}} {
		if got := Cap(tc.nofile); got != tc.want {
			t.Errorf("Cap(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}
