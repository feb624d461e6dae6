package main

import (
	"bytes"
	"cmp"
	"encoding"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/agnivade/levenshtein"

	"github.com/moonchat/moonchat/defaults"
)

// Loading a config file: BurntSushi/toml parses it (syntax errors carry
// their line), decodes it into Config (durations through
// Duration.UnmarshalText) and lists the keys no field took
// (MetaData.Undecoded). This file adds only what the decoder does not do:
//   - it matches keys case-insensitively ("Listen" would fill listen), and
//     TOML keys are case-sensitive: such a key is unknown here;
//   - it stops at the first value it cannot decode, in map order, and
//     names Go types ("destination has type integer"): checkValues reports
//     every such value first, in TOML terms, and leaves it out, so that the
//     rest still decodes and validates and one run shows every problem;
//   - unknown keys get a "did you mean" hint, and keys that moved to
//     another section say where they went (movedKeys).

// builtinSource is Config.Source for the embedded defaults.
const builtinSource = "built-in defaults"

// defaultConfigFile is read from the working directory when no -config is given.
const defaultConfigFile = "config.toml"

// builtinFile names the embedded defaults/config.toml in messages.
const builtinFile = "built-in defaults/config.toml"

// ErrConfig marks every error about the contents of a config file.
var ErrConfig = errors.New("invalid config")

// configError is one problem in a config file, naming the key.
type configError struct {
	file string // as the user named it, e.g. "config.toml"
	key  string // "[server] ping_interval", "[chat]" or "" when msg names it
	msg  string
	// syntax is set when the file is not valid TOML: nothing was decoded.
	syntax bool
}

func (e *configError) Error() string {
	if e.key == "" {
		return e.file + ": " + e.msg
	}
	return e.file + ": " + e.key + ": " + e.msg
}

func (e *configError) Is(target error) bool { return target == ErrConfig }

// movedKeys are keys that moved to the section that uses them (README.md,
// Changelog): the old spelling is an error that names the new one.
var movedKeys = map[string]string{
	"store.replay":    "[chat] replay",
	"store.api_limit": "[chat] api_limit",
}

// defaultConfig parses the embedded defaults/config.toml.
func defaultConfig() (*Config, error) {
	cfg := &Config{Source: builtinSource}
	if err := decodeConfig(cfg, builtinFile, defaults.Config()); err != nil {
		return nil, fmt.Errorf("built-in defaults are broken: %w", err)
	}
	return cfg, nil
}

// loadConfig returns the configuration to run with: the built-in defaults,
// overlaid with path when it is not empty, or with ./config.toml when path
// is empty and that file exists. Relative store.path and scripting.dir are
// relative to the config file's directory (config.toml says so), so they are
// joined with it here and stay right whatever the working directory.
func loadConfig(path string) (*Config, error) {
	cfg, err := defaultConfig()
	if err != nil {
		return nil, err
	}
	explicit := path != ""
	if !explicit {
		path = defaultConfigFile
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
	case !explicit && errors.Is(err, os.ErrNotExist):
		return cfg, validateConfig(cfg, builtinFile)
	default:
		return nil, fmt.Errorf("read config: %w", err)
	}
	err = decodeConfig(cfg, path, data)
	var ce *configError
	if errors.As(err, &ce) && ce.syntax {
		return nil, err // nothing was decoded: validating would say nothing useful
	}
	// Keys that failed to decode kept their defaults, so validating the
	// rest still finds real problems: report everything at once.
	if err := errors.Join(err, validateConfig(cfg, path)); err != nil {
		return nil, err
	}
	cfg.Source = path
	if dir := filepath.Dir(path); dir != "." {
		if cfg.Store.Path != "" && !filepath.IsAbs(cfg.Store.Path) {
			cfg.Store.Path = filepath.Join(dir, cfg.Store.Path)
		}
		if cfg.Scripting.Dir != "" && !filepath.IsAbs(cfg.Scripting.Dir) {
			cfg.Scripting.Dir = filepath.Join(dir, cfg.Scripting.Dir)
		}
		for i, p := range cfg.Auth.JWTPublicKeys {
			if p != "" && !filepath.IsAbs(p) {
				cfg.Auth.JWTPublicKeys[i] = filepath.Join(dir, p)
			}
		}
		for _, p := range []*string{&cfg.Server.TLSCert, &cfg.Server.TLSKey,
			&cfg.Cluster.Creds, &cfg.Cluster.NKey, &cfg.Cluster.TLSCert, &cfg.Cluster.TLSKey, &cfg.Cluster.TLSCA} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(dir, *p)
			}
		}
	}
	return cfg, nil
}

// decodeConfig overlays the TOML document data onto cfg (keys it does not
// hold keep their values). Every problem is reported (joined), in file
// order; a value that is reported is left out and its field keeps its
// value.
func decodeConfig(cfg *Config, file string, data []byte) error {
	var doc map[string]any
	md, err := toml.Decode(string(data), &doc)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return &configError{file: file, msg: fmt.Sprintf("line %d: %s", pe.Position.Line, pe.Message), syntax: true}
		}
		return &configError{file: file, msg: err.Error(), syntax: true}
	}
	order := map[string]int{} // key → its place in the file
	for i, k := range md.Keys() {
		order[k.String()] = i
	}
	var probs []keyProblem
	add := func(k toml.Key, key, format string, args ...any) {
		probs = append(probs, keyProblem{order[k.String()], &configError{file: file, key: key, msg: fmt.Sprintf(format, args...)}})
	}

	dropped := checkValues(md, doc, add)
	text := string(data)
	if dropped {
		// The decoder cannot skip a key: hand it the document without the
		// values reported above.
		var b bytes.Buffer
		if err := toml.NewEncoder(&b).Encode(doc); err != nil {
			return &configError{file: file, msg: fmt.Sprintf("re-encoding the valid keys: %v", err)}
		}
		text = b.String()
	}
	md, err = toml.Decode(text, cfg)
	if err != nil {
		// checkValues has vetted every value the decoder meets; report
		// whatever slipped through as it is.
		var pe toml.ParseError
		if errors.As(err, &pe) {
			add(strings.Split(pe.LastKey, "."), keyName(strings.Split(pe.LastKey, ".")), "%s", pe.Message)
		} else {
			add(nil, "", "%v", err)
		}
	}
	reportUndecoded(md.Undecoded(), add)
	slices.SortStableFunc(probs, func(a, b keyProblem) int { return cmp.Compare(a.at, b.at) })
	errs := make([]error, len(probs))
	for i, p := range probs {
		errs[i] = p.err
	}
	return errors.Join(errs...)
}

// keyProblem is a problem with the place of its key in the file.
type keyProblem struct {
	at  int
	err error
}

// adder records a problem with key k, named key in the message.
type adder func(k toml.Key, key, format string, args ...any)

// keyName renders a key as messages name it: "[server] listen".
func keyName(k toml.Key) string {
	switch len(k) {
	case 0:
		return ""
	case 1:
		return "[" + k[0] + "]"
	default:
		return "[" + k[0] + "] " + strings.Join(k[1:], ".")
	}
}

// checkValues vets, before the decoder sees them, what it would accept
// wrongly (a key spelled in another case) or stop at (a section that is
// not a table, a value of the wrong type or that its field's
// UnmarshalText refuses). It reports each one through add, deletes it from
// doc and says whether it deleted anything. Keys without a field are left
// to the decoder's Undecoded list.
func checkValues(md toml.MetaData, doc map[string]any, add adder) (dropped bool) {
	sections := schemaOf(reflect.TypeFor[Config]())
	for _, k := range md.Keys() {
		sect, ok := sections.field(k[0])
		if !ok {
			if len(k) == 1 && sections.foldMatch(k[0]) {
				add(k, "", "unknown section [%s]%s", k[0], suggest(k[0], sections.names))
				delete(doc, k[0])
				dropped = true
			}
			continue // Undecoded reports it
		}
		table, isTable := doc[k[0]].(map[string]any)
		if len(k) == 1 {
			if v, present := doc[k[0]]; present && !isTable {
				add(k, keyName(k), "must be a table, got %s", describe(v))
				delete(doc, k[0])
				dropped = true
			}
			continue
		}
		if isTable && len(k) == 2 && sect.Kind() == reflect.Map && sect.Elem().Kind() == reflect.Map {
			// A table of tables ([scripts.NAME]): each value must be a
			// table, which the decoder would otherwise drop silently.
			if _, ok := table[k[1]].(map[string]any); !ok {
				add(k, keyName(k), "must be a table ([%s.%s]), got %s", k[0], k[1], describe(table[k[1]]))
				delete(table, k[1])
				dropped = true
			}
			continue
		}
		if !isTable || len(k) != 2 || sect.Kind() != reflect.Struct {
			// Reported above, inside a key reported below, or a table of
			// free-form keys (a map: the decoder takes every key).
			continue
		}
		keys := schemaOf(sect)
		name := k[1]
		ft, ok := keys.field(name)
		switch {
		case movedKeys[k.String()] != "":
			add(k, "", "%s moved to %s", keyName(k), movedKeys[k.String()])
		case !ok && keys.foldMatch(name):
			add(k, "", "unknown key %s%s", keyName(k), suggest(name, keys.names))
		case !ok:
			continue // Undecoded reports it
		default:
			msg := checkValue(table[name], ft)
			if msg == "" {
				continue
			}
			add(k, keyName(k), "%s", msg)
		}
		delete(table, name)
		dropped = true
	}
	return dropped
}

// reportUndecoded reports the keys no field took: unknown sections and
// keys (a nested table is one unknown key), with a hint.
func reportUndecoded(keys []toml.Key, add adder) {
	sections := schemaOf(reflect.TypeFor[Config]())
	reported := map[string]bool{}
	for _, k := range keys {
		if reported[k[0]] || (len(k) > 2 && reported[toml.Key(k[:2]).String()]) {
			continue
		}
		if sect, ok := sections.field(k[0]); ok && sect.Kind() != reflect.Struct {
			// A table of free-form keys (a map field): whatever it holds
			// is its consumer's to check; values decoded into an "any"
			// count as undecoded.
			continue
		}
		if len(k) == 1 {
			reported[k[0]] = true
			add(k, "", "unknown section [%s]%s", k[0], suggest(k[0], sections.names))
			continue
		}
		reported[toml.Key(k[:2]).String()] = true
		var names []string
		if sect, ok := sections.field(k[0]); ok && sect.Kind() == reflect.Struct {
			names = schemaOf(sect).names
		}
		add(k, "", "unknown key %s%s", keyName(k[:2]), suggest(k[1], names))
	}
}

// schema lists the toml-tagged fields of a struct type.
type schema struct {
	names []string
	types map[string]reflect.Type
}

func schemaOf(t reflect.Type) schema {
	s := schema{types: map[string]reflect.Type{}}
	for f := range t.Fields() {
		if tag := f.Tag.Get("toml"); tag != "" && tag != "-" {
			s.names = append(s.names, tag)
			s.types[tag] = f.Type
		}
	}
	return s
}

// field returns the type of the field tagged exactly name.
func (s schema) field(name string) (reflect.Type, bool) {
	t, ok := s.types[name]
	return t, ok
}

// foldMatch reports whether name matches a field only when case is
// ignored, as the decoder matches.
func (s schema) foldMatch(name string) bool {
	for _, n := range s.names {
		if strings.EqualFold(n, name) {
			return true
		}
	}
	return false
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// checkValue says what is wrong with v, a decoded TOML value, as the value
// of a field of type t ("" when nothing is): "want an integer, got string
// "many"", or what the field's UnmarshalText says of it.
func checkValue(v any, t reflect.Type) string {
	want := ""
	switch {
	case reflect.PointerTo(t).Implements(textUnmarshaler):
		s, ok := v.(string)
		if !ok {
			if t == reflect.TypeFor[Duration]() {
				return fmt.Sprintf(`want a duration string such as "30s", got %s`, describe(v))
			}
			return fmt.Sprintf("want a string, got %s", describe(v))
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return err.Error()
		}
		return ""
	case t.Kind() == reflect.String:
		if _, ok := v.(string); !ok {
			want = "a string"
		}
	case t.Kind() == reflect.Bool:
		if _, ok := v.(bool); !ok {
			want = "true or false"
		}
	case t.Kind() == reflect.Int:
		if _, ok := v.(int64); !ok {
			want = "an integer"
		}
	case t.Kind() == reflect.Float64:
		switch v.(type) {
		case int64, float64:
		default:
			want = "a number"
		}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.String:
		arr, ok := v.([]any)
		for _, e := range arr {
			if _, isString := e.(string); !isString {
				ok = false
			}
		}
		if !ok {
			want = "an array of strings"
		}
	}
	if want == "" {
		return ""
	}
	return fmt.Sprintf("want %s, got %s", want, describe(v))
}

// describe renders a TOML value for an error message: its type and value.
func describe(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("string %q", v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// suggest returns ` (did you mean x?)` for the candidate closest to name
// when it is a plausible typo (at most 2 edits), else "".
func suggest(name string, candidates []string) string {
	best, bestD := "", 3
	for _, c := range candidates {
		if d := levenshtein.ComputeDistance(name, c); d < bestD {
			best, bestD = c, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %s?)", best)
}
