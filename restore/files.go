package restore

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/cryo-project/cryo/files"
	"github.com/cryo-project/cryo/ptrace"
)

// Environment that carries the file options to the helper (and lets a
// user give them to ./app.bin).
const (
	// envChan is the number of the stub's end of the socket the helper
	// moves the restored files over (the helper's end is fdChan).
	envChan = "CRYO_CHAN"
	// EnvFDs holds --fd handoffs, one "N=PATH" or "N=&M" per line.
	EnvFDs = "CRYO_FDS"
)

// fdChan is the helper's end of the file channel.
const fdChan = 5

// restoreFDs rebuilds the descriptor table in the stub (files package):
// every open file description is built in the helper and moved in, then
// the locks are taken again.
func (h *helper) restoreFDs() error {
	ch, err := strconv.Atoi(os.Getenv(envChan))
	if err != nil || ch < 0 {
		return fmt.Errorf("the restore helper has no file channel (%s=%q)", envChan, os.Getenv(envChan))
	}
	opts, err := fileOptions()
	if err != nil {
		return err
	}
	r := &files.Restorer{
		P: h.p, T: (*fileTarget)(h), Sys: h.host.Sys, Pid: h.pid, Opts: opts,
		Chan: ch, ChanLocal: os.NewFile(fdChan, "file channel"), Log: h.logf,
	}
	defer r.ChanLocal.Close()
	if _, err := r.Restore(h.r.NextBlob); err != nil {
		return err
	}
	h.winch = r.Winch
	h.files = r // its memfds and deleted files, for the mappings
	return nil
}

// fileOptions reads the file options from the environment.
func fileOptions() (files.RestoreOptions, error) {
	opts := files.RestoreOptions{AllowChanged: os.Getenv(files.EnvAllowChanged) == "1"}
	for _, l := range strings.Split(os.Getenv(EnvFDs), "\n") {
		if l == "" {
			continue
		}
		ho, err := files.ParseHandoff(l)
		if err != nil {
			return opts, err
		}
		opts.Handoffs = append(opts.Handoffs, ho)
	}
	return opts, nil
}

// fileTarget is the helper as the files package sees the stub.
type fileTarget helper

func (t *fileTarget) Syscall(name string, nr uint64, args ...uint64) (uint64, error) {
	return (*helper)(t).sys(name, nr, args...)
}

func (t *fileTarget) Poke(off uint64, b []byte) (uint64, error) {
	return (*helper)(t).poke(off, b)
}

func (t *fileTarget) Peek(addr uint64, b []byte) error {
	n, err := ptrace.ReadMem(t.pid, addr, b)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("read %d of %d bytes at %#x", n, len(b), addr)
	}
	return nil
}
