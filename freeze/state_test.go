package freeze

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/cryo-project/cryo/image"
)

// status turns /proc/PID/status text into the map proc.Status returns.
func status(text string) map[string]string {
	out := map[string]string{}
	for _, l := range strings.Split(text, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}

// Credentials lines of /proc/PID/status (fs/proc/array.c, task_state and
// task_cap): a user in a few groups.
const userCreds = "Name:\tcounter\nUmask:\t0022\nState:\tS (sleeping)\n" +
	"Uid:\t1000\t1000\t1000\t1000\nGid:\t1000\t1000\t1000\t1000\n" +
	"FDSize:\t64\nGroups:\t4 24 27 30 46 100 1000 \n" +
	"CapInh:\t0000000000000000\nCapPrm:\t0000000000000000\nCapEff:\t0000000000000000\n" +
	"CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t0\n"

func TestParseCreds(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		want image.Creds
	}{
		{"user", userCreds, image.Creds{
			Uid: [4]uint32{1000, 1000, 1000, 1000}, Gid: [4]uint32{1000, 1000, 1000, 1000},
			Groups: []uint32{4, 24, 27, 30, 46, 100, 1000},
			CapBnd: 0x1ffffffffff}},
		// root without groups: "Groups:\t \n".
		{"root", "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\nGroups:\t \n" +
			"CapInh:\t0000000000000000\nCapPrm:\t000001fffeffffff\nCapEff:\t000001fffeffffff\n" +
			"CapBnd:\t000001fffeffffff\nCapAmb:\t0000000000000000\n",
			image.Creds{CapPrm: 0x1fffeffffff, CapEff: 0x1fffeffffff, CapBnd: 0x1fffeffffff}},
		// A setuid-root program run by 1000, setgid 5, with an
		// ambient capability: every column and mask apart.
		{"setuid", "Uid:\t1000\t0\t0\t0\nGid:\t1000\t5\t5\t6\nGroups:\t1000\n" +
			"CapInh:\t0000000000000400\nCapPrm:\t000001ffffffffff\nCapEff:\t0000000000003000\n" +
			"CapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000400\n",
			image.Creds{Uid: [4]uint32{1000, 0, 0, 0}, Gid: [4]uint32{1000, 5, 5, 6}, Groups: []uint32{1000},
				CapInh: 0x400, CapPrm: 0x1ffffffffff, CapEff: 0x3000, CapBnd: 0x1ffffffffff, CapAmb: 0x400}},
		{"nobody", strings.NewReplacer("1000\t1000\t1000\t1000", "65534\t65534\t65534\t65534").Replace(userCreds),
			image.Creds{Uid: [4]uint32{65534, 65534, 65534, 65534}, Gid: [4]uint32{65534, 65534, 65534, 65534},
				Groups: []uint32{4, 24, 27, 30, 46, 100, 1000}, CapBnd: 0x1ffffffffff}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCreds(status(tc.text))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseCredsMalformed(t *testing.T) {
	for _, tc := range []struct {
		name     string
		old, new string // replaced in userCreds
		err      string
	}{
		{"no Uid line", "Uid:", "Uxd:", `bad Uid line ""`},
		{"three uids", "Uid:\t1000\t1000\t1000\t1000", "Uid:\t1000\t1000\t1000", "bad Uid line"},
		{"five gids", "Gid:\t1000\t1000\t1000\t1000", "Gid:\t1000\t1000\t1000\t1000\t1000", "bad Gid line"},
		{"uid not a number", "Uid:\t1000\t1000", "Uid:\t1000\tx", "bad Uid line"},
		{"gid beyond 32 bits", "Gid:\t1000", "Gid:\t4294967296", "bad Gid line"},
		{"negative uid", "Uid:\t1000", "Uid:\t-1", "bad Uid line"},
		{"group not a number", "Groups:\t4 24", "Groups:\t4 x24", "bad Groups line"},
		{"no CapEff line", "CapEff:", "CapEfff:", "bad CapEff line"},
		{"CapPrm not hex", "CapPrm:\t0000000000000000", "CapPrm:\tzz", "bad CapPrm line"},
		{"CapBnd beyond 64 bits", "CapBnd:\t000001ffffffffff", "CapBnd:\t10000000000000000", "bad CapBnd line"},
		{"CapAmb with 0x", "CapAmb:\t0000000000000000", "CapAmb:\t0x0", "bad CapAmb line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := strings.Replace(userCreds, tc.old, tc.new, 1)
			if text == userCreds {
				t.Fatalf("%q not in the status text", tc.old)
			}
			got, err := parseCreds(status(text))
			if err == nil {
				t.Fatalf("no error; got %+v", got)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Errorf("error %q, want it to say %q", err, tc.err)
			}
		})
	}
}

func TestParseSigSet(t *testing.T) {
	for _, tc := range []struct {
		hex  string
		want uint64
	}{
		{"0000000000000000", 0},
		{"0000000000000400", 1 << (unix.SIGSEGV - 1)},
		{"0000000000004a02", 1<<(unix.SIGINT-1) | 1<<(unix.SIGUSR1-1) | 1<<(unix.SIGUSR2-1) | 1<<(unix.SIGTERM-1)},
		{"fffffffe7ffbfeff", 0xfffffffe7ffbfeff},
		{"8000000000000000", 1 << 63}, // signal 64, SIGRTMAX
	} {
		t.Run(tc.hex, func(t *testing.T) {
			got, err := parseSigSet(tc.hex)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %#x, want %#x", got, tc.want)
			}
		})
	}
	for _, bad := range []string{"", "xyz", "0x400", "10000000000000000", "-1", "00000000 00000400"} {
		t.Run("bad "+bad, func(t *testing.T) {
			if got, err := parseSigSet(bad); err == nil || !strings.Contains(err.Error(), "bad signal set") {
				t.Errorf("got %#x, %v; want a bad signal set error", got, err)
			}
		})
	}
}

func TestCPUsWords(t *testing.T) {
	for _, tc := range []struct {
		name string
		cpus []int
		want []uint64
	}{
		{"none", nil, []uint64{0}},
		{"cpu 0", []int{0}, []uint64{1}},
		{"cpus 0-3", []int{0, 1, 2, 3}, []uint64{0xf}},
		{"cpu 63", []int{63}, []uint64{1 << 63}},
		{"cpu 64", []int{64}, []uint64{0, 1}},
		{"cpus 1 and 200", []int{1, 200}, []uint64{2, 0, 0, 1 << 8}},
		{"the last one", []int{1023}, append(make([]uint64, 15), 1<<63)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s unix.CPUSet
			for _, c := range tc.cpus {
				s.Set(c)
			}
			if got := cpusWords(&s); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#x, want %#x", got, tc.want)
			}
		})
	}
}

// TestHolds: a needle is found wherever it lies, across the reads' chunk
// boundaries too, and not where it is absent.
func TestHolds(t *testing.T) {
	needle := []byte("glibc.cpu.hwcaps")
	for _, at := range []int{0, 100, 1<<20 - 5, 1 << 20, 3<<20 - len(needle)} {
		b := make([]byte, 3<<20)
		copy(b[at:], needle)
		path := filepath.Join(t.TempDir(), "exe")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if !holds(path, needle) {
			t.Errorf("needle at %d not found", at)
		}
		b[at+3] = 'X'
		os.WriteFile(path, b, 0o600)
		if holds(path, needle) {
			t.Errorf("broken needle at %d found", at)
		}
	}
	if holds("/nonexistent", needle) {
		t.Error("found in a file that does not exist")
	}
}
