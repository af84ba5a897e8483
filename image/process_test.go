package image

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// jsonNameProblems walks every struct type reachable from roots (through
// pointers, slices, arrays, maps and fields) and reports each exported
// field without an explicit JSON name (`json:"name,..."` or `json:"-"`),
// and each pair of fields of one struct with the same name. The names
// are compared as encoding/json matches them when decoding: ignoring
// case.
func jsonNameProblems(roots ...reflect.Type) []string {
	var problems []string
	seen := map[reflect.Type]bool{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for {
			switch t.Kind() {
			case reflect.Pointer, reflect.Slice, reflect.Array:
				t = t.Elem()
				continue
			case reflect.Map:
				walk(t.Key())
				t = t.Elem()
				continue
			}
			break
		}
		if t.Kind() != reflect.Struct || seen[t] {
			return
		}
		seen[t] = true
		names := map[string]string{}
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() && !f.Anonymous {
				continue // encoding/json ignores it
			}
			where := t.Name() + "." + f.Name
			tag, ok := f.Tag.Lookup("json")
			name, _, _ := strings.Cut(tag, ",")
			switch {
			case !ok || name == "":
				// An embedded struct without a name is no better: its
				// fields are promoted under their own.
				problems = append(problems, where+" has no explicit json name")
			case tag == "-":
			default:
				key := strings.ToLower(name)
				if other, dup := names[key]; dup {
					problems = append(problems, fmt.Sprintf("%s has the json name %q of %s", where, name, other))
				}
				names[key] = where
			}
			walk(f.Type)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	return problems
}

// Types for checking the checker.
type (
	jsonGood struct {
		A     int            `json:"a"`
		B     []jsonGoodItem `json:"b,omitempty"`
		Skip  chan int       `json:"-"`
		small int
	}
	jsonGoodItem struct {
		C [2]*string `json:"c"`
	}
	jsonBad struct {
		Named    int `json:"named"`
		Bare     int
		OnlyOpts int                `json:",omitempty"`
		Skipped  int                `json:"-"`
		Dup      int                `json:"NAMED"`
		Inner    []*jsonBadInner    `json:"inner"`
		Keys     map[jsonBadKey]int `json:"keys"`
		hidden   int
	}
	jsonBadInner struct {
		X [2]map[string]jsonBadDeep `json:"x"`
		jsonGoodItem
	}
	jsonBadDeep struct {
		Y int
	}
	jsonBadKey struct {
		K string
	}
)

// TestJSONNamesExplicit keeps every field of the metadata under a JSON
// name of its own: the names are the format, so that renaming a Go
// field cannot silently drop it from the images already made.
func TestJSONNamesExplicit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		roots []reflect.Type
		want  []string
	}{
		{"format", []reflect.Type{reflect.TypeFor[Process](), reflect.TypeFor[Thread](), reflect.TypeFor[Tail]()}, nil},
		{"checker-good", []reflect.Type{reflect.TypeFor[*jsonGood]()}, nil},
		{"checker-bad", []reflect.Type{reflect.TypeFor[jsonBad]()}, []string{
			"jsonBad.Bare has no explicit json name",
			"jsonBad.OnlyOpts has no explicit json name",
			`jsonBad.Dup has the json name "NAMED" of jsonBad.Named`,
			"jsonBadDeep.Y has no explicit json name",
			"jsonBadInner.jsonGoodItem has no explicit json name",
			"jsonBadKey.K has no explicit json name",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := jsonNameProblems(tc.roots...)
			sort.Strings(got)
			want := slices.Clone(tc.want)
			sort.Strings(want)
			if !slices.Equal(got, want) {
				t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// fill sets every exported field reachable from v to a value that is not
// zero, each number a different one.
func fill(t *testing.T, v reflect.Value, n *uint64) {
	if v.Type() == reflect.TypeOf(json.RawMessage(nil)) {
		*n++
		v.SetBytes([]byte(fmt.Sprintf(`"p%d"`, *n))) // indenting leaves it as it is
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), n)
			}
		}
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(t, s.Index(i), n)
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			fill(t, v.Index(i), n)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), n)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(t, k, n)
		fill(t, e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		*n++
		v.SetString(fmt.Sprintf("s%d", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		*n++
		x := int64(*n)
		if v.OverflowInt(x) {
			x = x%100 + 1
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		*n++
		x := *n
		if v.OverflowUint(x) {
			x = x%200 + 1
		}
		v.SetUint(x)
	default:
		t.Fatalf("fill: a %v in the metadata: JSON cannot carry it back as it was", v.Type())
	}
}

// zeroLeaves lists the paths of the zero numbers, strings, bools and
// empty slices reachable from v.
func zeroLeaves(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Struct:
		var z []string
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				z = append(z, zeroLeaves(v.Field(i), path+"."+f.Name)...)
			}
		}
		return z
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			return []string{path}
		}
		var z []string
		for i := range v.Len() {
			z = append(z, zeroLeaves(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return z
	case reflect.Pointer:
		if v.IsNil() {
			return []string{path}
		}
		return zeroLeaves(v.Elem(), path)
	}
	if v.IsZero() {
		return []string{path}
	}
	return nil
}

// fullMetadata is a Process (with its threads) and a Tail with every
// field set, then made valid; the files' contents are blobs 1 and 2.
func fullMetadata(t *testing.T) (*Process, *Tail) {
	p, tail := new(Process), new(Tail)
	var n uint64
	fill(t, reflect.ValueOf(p).Elem(), &n)
	fill(t, reflect.ValueOf(tail).Elem(), &n)
	// What validateProcess and validateThread require.
	p.Arch, p.PageSize = ArchAMD64, 4096
	for i := range p.VMAs {
		v := &p.VMAs[i]
		v.Start, v.End = uint64(0x10000*(i+1)), uint64(0x10000*(i+1)+0x4000)
		v.Guards = [][2]uint64{{v.Start, v.Start + 0x1000}, {v.Start + 0x2000, v.End}}
	}
	for i := range p.Files {
		p.Files[i].ID = 100 + i
		p.Files[i].Blob = uint64(1 + i)
	}
	for i := range p.FDs {
		p.FDs[i].File = p.Files[i%len(p.Files)].ID
	}
	for i := range p.Locks {
		p.Locks[i].File = p.Files[i%len(p.Files)].ID
	}
	p.NumThreads = len(p.Threads)
	if z := zeroLeaves(reflect.ValueOf(p).Elem(), "Process"); z != nil {
		t.Fatalf("fill left zero: %v", z)
	}
	if z := zeroLeaves(reflect.ValueOf(tail).Elem(), "Tail"); z != nil {
		t.Fatalf("fill left zero: %v", z)
	}
	return p, tail
}

// Every field of the metadata survives an image, whatever its type: no
// field is dropped on the way (a `json:"-"` by mistake, a type JSON does
// not carry back).
func TestEveryFieldRoundTrips(t *testing.T) {
	p, tail := fullMetadata(t)
	want := *p
	img := writeImage(t, p, contents{blobs: []blob{{1, []byte("one")}, {2, []byte("two")}}, tail: tail}, writeOpts{})
	got, c, err := readAll(bytes.NewReader(img))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, &want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(&want)
		t.Errorf("metadata differs:\n got %s\nwant %s", gj, wj)
	}
	if !reflect.DeepEqual(got.Threads, want.Threads) {
		t.Errorf("threads differ:\n got %+v\nwant %+v", got.Threads, want.Threads)
	}
	if !reflect.DeepEqual(c.tail, tail) {
		t.Errorf("tail differs:\n got %+v\nwant %+v", c.tail, tail)
	}
}

var updateGolden = flag.Bool("update-golden", false, "rewrite testdata/format-v2.json")

// goldenMetadata is what testdata/format-v2.json holds.
type goldenMetadata struct {
	Process *Process `json:"process"`
	Thread  *Thread  `json:"thread"`
	Tail    *Tail    `json:"tail"`
}

// jsonPaths lists the object keys of a decoded JSON value as paths,
// "[]" standing for any element of an array.
func jsonPaths(v any, path string, out map[string]bool) {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			p := path + "." + k
			out[p] = true
			jsonPaths(e, p, out)
		}
	case []any:
		for _, e := range v {
			jsonPaths(e, path+"[]", out)
		}
	}
}

// TestJSONGolden pins the JSON names of format version 2: a name that
// disappears (a field renamed or removed) would make the images already
// written lose that field. A new field must be added to the golden file
// (-update-golden), so that its name is pinned too.
func TestJSONGolden(t *testing.T) {
	p, tail := fullMetadata(t)
	cur := goldenMetadata{Process: p, Thread: &p.Threads[0], Tail: tail}
	js, err := json.MarshalIndent(cur, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	js = append(js, '\n')
	name := filepath.Join("testdata", "format-v2.json")
	if *updateGolden {
		if err := os.WriteFile(name, js, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(name)
	if err != nil {
		t.Fatalf("%v (run go test -run TestJSONGolden -update-golden)", err)
	}
	var g, c any
	if err := json.Unmarshal(golden, &g); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if err := json.Unmarshal(js, &c); err != nil {
		t.Fatal(err)
	}
	gp, cp := map[string]bool{}, map[string]bool{}
	jsonPaths(g, "", gp)
	jsonPaths(c, "", cp)
	var gone, added []string
	for k := range gp {
		if !cp[k] {
			gone = append(gone, k)
		}
	}
	for k := range cp {
		if !gp[k] {
			added = append(added, k)
		}
	}
	sort.Strings(gone)
	sort.Strings(added)
	if gone != nil {
		t.Errorf("JSON names of format version %d are gone (renamed or removed: images already written would lose them): %v", Version, gone)
	}
	if added != nil {
		t.Errorf("new JSON names %v: if they are meant, pin them with go test ./image -run TestJSONGolden -update-golden", added)
	}
	if gone != nil || added != nil {
		return
	}
	// Same names: the values written in the golden file read back.
	var back goldenMetadata
	if err := json.Unmarshal(golden, &back); err != nil {
		t.Fatal(err)
	}
	back.Process.Threads = p.Threads
	if !reflect.DeepEqual(back, cur) {
		t.Errorf("%s does not decode to the metadata it was made from: run -update-golden if the change is meant", name)
	}
}
