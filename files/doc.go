// Package files owns the descriptor table: every kind of open file, how
// freeze reads it and how thaw builds it again, one file per kind (reg.go,
// pipe.go, ...), in the manner of CRIU's files-reg / pipes / sk-unix split.
// Adding a kind is one file and one entry in the kinds table (kinds.go).
//
// # Freeze
//
// Collect walks /proc/PID/fd in order. Each fd is taken into freeze's own
// process with pidfd_getfd(2): a second descriptor of the same open file
// description, on which freeze can ask what the kernel tells only a
// holder (getsockname, getsockopt, F_GETPIPE_SZ, timerfd_gettime...) and
// read queued bytes without consuming them (tee(2) for pipes, MSG_PEEK
// with SO_PEEK_OFF for sockets). No syscall is injected for that, and the
// target sees nothing: freeze holds its copies until the image is written
// and then closes them. The one exception is an established TCP
// connection (tcp.go), which is read in repair mode: the Dumper keeps
// how to undo that, and Release undoes it before the target runs again
// (a failed freeze, --leave-running); once the target is killed
// (TargetGone) the copy is closed still in repair mode, silently, and the
// thawed process takes the connection over.
//
// fds that share an open file description (dup, fork, `>log 2>&1`) are
// found with kcmp(KCMP_FILE) and recorded as one image.File with several
// image.FDs. Each File is matched against the kinds table, in order; the
// first kind whose match accepts it dumps it: the common fields of
// image.File plus the kind's own payload (JSON), and bulk bytes (pipe
// contents, an unlinked file) as BLOB records, written after the metadata
// and before the pages. A kind may look at the whole table once every fd
// is seen (finish), to tell a pipe with both ends inside the process from
// one whose peer is outside. An fd that no kind accepts, or that its kind
// refuses, fails the freeze with one line naming the fd, its kind and the
// reason; the target is left running as it was.
//
// # Thaw
//
// The restore helper builds every open file description in its own
// process (open, pipe2, socketpair...), with the thawing user's
// privileges, feeds it its BLOB bytes, and then moves them into the
// thawing process (the stub) over a unix socket the stub inherited from
// the thaw: the helper sends each with SCM_RIGHTS, an injected recvmsg
// receives it, and an injected dup3 puts it on each of its numbers. Files
// are moved in the order of their lowest fd, one at a time, so that the
// number the kernel gives a received file is never one a later file must
// have. What must be done by the process itself (epoll_ctl, whose keys are
// the process's fd numbers; POSIX locks, owned by the process) is
// injected once every fd is in place. A memfd or unlinked file that a
// MAP_SHARED mapping maps is moved in once more, after the fds, on a
// number of its own that the mapping is made from and that is closed
// right after (shmem.go): the mapping and the fds are one object.
//
// The thaw's own descriptors are the stub's: fds 0-2 (and any other
// number `--fd N=&M` names) are taken into the helper with pidfd_getfd,
// then every fd of the stub but the channel is closed.
//
// # Terminals
//
// A terminal on 0-2 (or the same one higher up) is std.go's: the thaw's
// own, opened again with the fd's access mode. Beyond them (tty.go): the
// process's controlling terminal is connected to the thaw's; a pty pair
// the process holds is made again as a new pair with its modes; a slave
// whose master is outside is an external peer (hung up unless handed
// in); any other terminal is refused by name.
//
// # External peers
//
// A pipe or socket whose other end is outside the process is never a
// reason to refuse. On fds 0-2 (and on higher fds sharing one of them,
// like bash's 255) it is connected to the thaw's own fd. Elsewhere the
// thaw builds it with its peer gone (see pipe.go), unless the user hands
// a descriptor in: `thaw --fd N=PATH` opens PATH with the fd's access
// mode, `thaw --fd N=&M` gives it the thaw's own fd M. freeze prints one
// line per external peer saying which.
// # Files by path
//
// What is reopened by its path (reg.go, path.go, the FIFOs of pipe.go)
// must lead at thaw to the file frozen: the same type, and on the
// machine of the freeze the same inode; a regular file also its size and
// modification time (an O_PATH descriptor names a file, not its
// contents: path.go). Anything else refuses the thaw with one line
// naming the path and what changed; thaw --allow-changed goes on with a
// warning line. freeze --carry-files puts the contents of the open
// regular files in the image, so that a vanished one is made again
// (carry.go). What no path leads to any more is made again when it has
// no contents to lose: a deleted directory or device node (deleted.go);
// a namespace is reopened from the thaw's own /proc/self/ns (ns.go).
package files
