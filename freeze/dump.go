package freeze

import (
	"bytes"
	"context"
	"fmt"
	"os"

	"github.com/cryo-project/cryo/image"
	"github.com/cryo-project/cryo/proc"
	"github.com/cryo-project/cryo/ptrace"
)

// dumper copies the wanted pages of each VMA into the image: runs of
// wanted pages are read with process_vm_readv in chunks of len(buf), pages
// that read as zero are dropped (the restored mapping is zero already),
// and runs of non-zero pages go to the writer.
type dumper struct {
	ctx   context.Context
	pid   int
	w     *image.Writer
	pm    *os.File
	mem   *os.File
	ps    uint64
	buf   []byte
	pmBuf []uint64
	pages int64
	zero  int64
	runs  int
}

func (d *dumper) vma(v *image.VMA) error {
	switch v.Kind {
	case image.VMAVVAR, image.VMAVDSO, image.VMAFileShared:
		return nil // the vdso travels in the metadata
	}
	if v.Flags&image.VMANoDump != 0 {
		return nil
	}
	ents, err := proc.Pagemap(d.pm, v.Start, v.End, int(d.ps), d.pmBuf)
	if err != nil {
		return err
	}
	d.pmBuf = ents
	n := uint64(len(ents))
	for i := uint64(0); i < n; {
		if !wantPage(v, ents[i]) {
			i++
			continue
		}
		j := i
		for j < n && wantPage(v, ents[j]) && (j-i+1)*d.ps <= uint64(len(d.buf)) {
			j++
		}
		if d.runs == 1 { // some pages are in the output already
			if err := fault(d.ctx, "dumping"); err != nil {
				return err
			}
		} else if err := d.ctx.Err(); err != nil {
			return fmt.Errorf("interrupted while writing pages: the target was left as it was")
		}
		if err := d.run(v, v.Start+i*d.ps, int(j-i)); err != nil {
			return err
		}
		d.runs++
		i = j
	}
	return nil
}

var zeroPage = make([]byte, 65536)

// run reads npages at addr and writes the non-zero ones.
func (d *dumper) run(v *image.VMA, addr uint64, npages int) error {
	b := d.buf[:uint64(npages)*d.ps]
	got, err := ptrace.ReadMem(d.pid, addr, b)
	if err != nil || got < len(b) {
		// Unreadable for process_vm_readv (PROT_NONE pages with
		// data, or a partial read): /proc/PID/mem reads with
		// FOLL_FORCE. Pages neither can read (a file mapping past
		// its file's end) are left out: they read as zero at thaw.
		if got < 0 {
			got = 0
		}
		for off := uint64(got) &^ (d.ps - 1); off < uint64(len(b)); off += d.ps {
			pg := b[off : off+d.ps]
			if _, rerr := d.mem.ReadAt(pg, int64(addr+off)); rerr != nil {
				copy(pg, zeroPage[:d.ps])
			}
		}
	}
	zero := zeroPage[:d.ps]
	start := -1
	flush := func(end int) error {
		if start < 0 {
			return nil
		}
		s, e := uint64(start)*d.ps, uint64(end)*d.ps
		if err := d.w.WritePages(addr+s, b[s:e]); err != nil {
			return fmt.Errorf("write image: %w", err)
		}
		d.pages += int64(end - start)
		start = -1
		return nil
	}
	for i := 0; i < npages; i++ {
		pg := b[uint64(i)*d.ps : uint64(i+1)*d.ps]
		if bytes.Equal(pg, zero) {
			d.zero++
			if err := flush(i); err != nil {
				return err
			}
			continue
		}
		if start < 0 {
			start = i
		}
	}
	return flush(npages)
}
