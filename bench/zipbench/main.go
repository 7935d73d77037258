// zipbench times golang.org/x/mod/zip.CreateFromDir (and, separately, hashing the result as
// the go command does with dirhash.HashZip) on one directory: the reference that bench/private
// compares modgate's zip builder against.
//
// Usage: zipbench -dir DIR -module PATH -version vX.Y.Z -out FILE.zip
// Prints one JSON line: {"create_s": …, "hash_s": …, "h1": "h1:…", "bytes": …}.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"os"
	"time"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
	"golang.org/x/mod/zip"
)

func main() {
	dir := flag.String("dir", "", "module root directory")
	path := flag.String("module", "", "module path")
	version := flag.String("version", "", "version")
	out := flag.String("out", "", "zip file to write")
	flag.Parse()
	f, err := os.Create(*out)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	if err := zip.CreateFromDir(f, module.Version{Path: *path, Version: *version}, *dir); err != nil {
		log.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		log.Fatal(err)
	}
	created := time.Since(start)
	if err := f.Close(); err != nil {
		log.Fatal(err)
	}
	start = time.Now()
	h1, err := dirhash.HashZip(*out, dirhash.Hash1)
	if err != nil {
		log.Fatal(err)
	}
	hashed := time.Since(start)
	st, err := os.Stat(*out)
	if err != nil {
		log.Fatal(err)
	}
	json.NewEncoder(os.Stdout).Encode(map[string]any{
		"create_s": created.Seconds(),
		"hash_s":   hashed.Seconds(),
		"h1":       h1,
		"bytes":    st.Size(),
	})
}
