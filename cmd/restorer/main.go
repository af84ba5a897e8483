// Command restorer is the second stage of every self-restoring executable
// (image/doc.go): the thaw and nothing else, no command line, no freeze,
// built stripped, so that the copy each image carries is small. make
// appends it, lz4-compressed, to bin/freeze (image.AttachRestorer), which
// puts it in the images it writes. Run by hand it only says what it is.
package main

import (
	"fmt"
	"os"

	"github.com/cryo-project/cryo/restore"
)

func main() {
	restore.Main()
	fmt.Fprintln(os.Stderr, "restorer: cryo's restorer runs inside a frozen image (./app.bin); thaw an image with thaw")
	os.Exit(2)
}
