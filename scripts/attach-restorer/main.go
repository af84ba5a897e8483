// Command attach-restorer packs a restorer program (cmd/restorer, built
// stripped) and attaches it to a freeze binary, whose images then carry
// it (image.AttachRestorer; image/doc.go). make runs it after building
// bin/freeze:
//
//	attach-restorer build/restorer bin/freeze
//
// A restorer attached before is replaced.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/cryo-project/cryo/image"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: attach-restorer RESTORER PROGRAM")
		os.Exit(2)
	}
	if err := attach(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintf(os.Stderr, "attach-restorer: %v\n", err)
		os.Exit(1)
	}
}

func attach(restorer, program string) error {
	prog, err := os.ReadFile(restorer)
	if err != nil {
		return err
	}
	packed, err := image.PackRestorer(prog, true)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(program, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	old, err := image.AttachedRestorer(f)
	if err != nil && !errors.Is(err, image.ErrNoRestorer) {
		return err
	}
	end, err := f.Seek(0, 2)
	if err != nil {
		return err
	}
	if old != nil {
		end -= int64(len(old)) + image.AttachFooterSize
		if err := f.Truncate(end); err != nil {
			return err
		}
	}
	if _, err := f.Seek(end, 0); err != nil {
		return err
	}
	if err := image.AttachRestorer(f, packed); err != nil {
		return err
	}
	fmt.Printf("attach-restorer: %s: %d bytes packed to %d, attached to %s\n", restorer, len(prog), len(packed), program)
	return f.Close()
}
