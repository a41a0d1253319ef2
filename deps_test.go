package sluice_test

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/sluice-io/sluice/"

// allowed lists, for each package of the repo, the repo packages it may
// import (non-test files). This is the table in shared/STYLE.md: imports
// point down the stack only.
var allowed = map[string][]string{
	"internal/vfs":       {},
	"internal/log/batch": {},
	"internal/log":       {"internal/log/batch", "internal/vfs"},
	"internal/protocol":  {},
	"internal/metadata":  {"internal/vfs"},
	"internal/auth":      {"internal/protocol", "internal/metadata"},
	"internal/replica":   {"internal/log", "internal/log/batch", "internal/metadata", "internal/protocol"},
	"internal/group":     {"internal/log", "internal/log/batch", "internal/metadata", "internal/protocol"},
	"internal/txn":       {"internal/log", "internal/log/batch", "internal/metadata", "internal/protocol"},
	"internal/broker":    {"*internal"},
	"pkg/sluicetest":     {"internal/broker"},
	"cmd/sluice":         {"internal/broker", "pkg/sluicetest"},
	"bench":              {},
	"bench/kfakeserver":  {},

	// The child-process cluster harness for tests imports no repo package.
	"internal/clustertest": {},
}

func TestDependencyDirection(t *testing.T) {
	for _, dir := range goPackageDirs(t) {
		allow, ok := allowed[dir]
		if !ok {
			t.Errorf("package %s is not in the dependency table of deps_test.go; add it", dir)
			continue
		}
		for _, imp := range imports(t, dir) {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			target := strings.TrimPrefix(imp, module)
			okImp := false
			for _, a := range allow {
				if a == target || a == "*internal" && strings.HasPrefix(target, "internal/") {
					okImp = true
				}
			}
			if !okImp {
				t.Errorf("%s imports %s: not allowed by the dependency table", dir, target)
			}
		}
	}
}

func TestPackageDocs(t *testing.T) {
	for _, dir := range goPackageDirs(t) {
		fset := token.NewFileSet()
		pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ParseComments|parser.PackageClauseOnly)
		if err != nil {
			t.Fatal(err)
		}
		documented := false
		for _, p := range pkgs {
			for _, f := range p.Files {
				if f.Doc != nil && len(strings.TrimSpace(f.Doc.Text())) > 20 {
					documented = true
				}
			}
		}
		if !documented {
			t.Errorf("package %s has no package doc comment", dir)
		}
	}
}

func goPackageDirs(t *testing.T) []string {
	var dirs []string
	seen := map[string]bool{}
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "." || d.Name() == "testdata" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() && path != "." {
			// Nested modules (third_party/kmsg) are not part of this one.
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		if dir != "." && !seen[dir] {
			seen[dir] = true
			dirs = append(dirs, dir)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return dirs
}

func imports(t *testing.T, dir string) []string {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, parser.ImportsOnly)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range pkgs {
		for _, f := range p.Files {
			for _, s := range f.Imports {
				v, _ := strconv.Unquote(s.Path.Value)
				out = append(out, v)
			}
		}
	}
	return out
}
