package console

import (
	"embed"
	"io/fs"
	"mime"
	"path"
)

//go:embed assets
var embedded embed.FS

// Asset is one embedded file of the console.
type Asset struct {
	Body        []byte
	ContentType string
}

// assets maps a path under /console/ ("" is the page) to its file, read once.
var assets = func() map[string]Asset {
	m := map[string]Asset{}
	err := fs.WalkDir(embedded, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := embedded.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		m[p[len("assets/"):]] = Asset{Body: b, ContentType: ct}
		return nil
	})
	if err != nil {
		panic("console: embedded assets unreadable: " + err.Error()) // a build defect, not a runtime condition
	}
	m[""] = m["index.html"]
	return m
}()

// Lookup returns the embedded file at name, a path relative to /console/;
// "" is the console's page.
func Lookup(name string) (Asset, bool) {
	a, ok := assets[name]
	return a, ok
}
