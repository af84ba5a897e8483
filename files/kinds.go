package files

import (
	"os"
	"slices"

	"github.com/cryo-project/cryo/image"
)

// kind is one kind of open file: how freeze recognizes and reads it and
// how thaw builds it again.
type kind struct {
	name image.FileKind
	// match tells whether o is of this kind. Kinds are tried in table
	// order; the first that matches dumps the file.
	match func(d *Dumper, o *Object) bool
	// dump fills f (its common fields are set; Kind is name) from o, or
	// says why the file cannot be carried.
	dump func(d *Dumper, o *Object, f *image.File) error
	// finish, if set, runs once every fd is seen.
	finish func(d *Dumper) error
	// open builds f in the helper. nil with no error leaves f's fds
	// closed.
	open func(r *Restorer, f *image.File) (*os.File, error)
}

// kinds is the table, in match order: the specific before the general.
// Every kind of socket cryo carries comes before socketKind, which
// refuses the rest.
var kinds = []*kind{
	&pathKind, // O_PATH of anything with a path, whatever its type
	&stdKind,
	&ttyKind,
	&pipeKind,
	&nsKind,
	&secretmemKind, // before unlinkedKind: /proc says "/secretmem (deleted)"
	&memfdKind,
	&unlinkedKind,
	&inetKind,
	&unixKind,
	&regKind,
	&dirKind,
	&deviceKind,
	&deletedDirKind,
	&deletedDevKind,
	&eventfdKind,
	&timerfdKind,
	&signalfdKind,
	&inotifyKind,
	&epollKind,
	// Every other anon-inode file, refused by name.
	&anonKind,
	// Last: every socket no kind above carries, refused by its family.
	&socketKind,
}

func kindNamed(name image.FileKind) *kind {
	for _, k := range kinds {
		if k.name == name {
			return k
		}
	}
	return nil
}

// KindNames lists every kind of file this cryo knows, in table order.
func KindNames() []image.FileKind {
	var names []image.FileKind
	for _, k := range kinds {
		if !slices.Contains(names, k.name) { // FileAnon has two entries
			names = append(names, k.name)
		}
	}
	return names
}
