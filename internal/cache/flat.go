package cache

import (
	"encoding/binary"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/callrouter/callrouter/internal/domain"
)

// The flat index holds every warm (tenant, suffix) key in memory the garbage
// collector never has to look at: records packed back to back into one
// []byte slab, found through an open-addressing table of uint64 slots. Both
// are pointer-free, so a GC cycle neither marks a million small objects nor
// follows a pointer into them, and a hit touches one slot and one record
// instead of a map bucket, an entry and its rows.
//
// A slot is 32 bits of the key's hash (the fingerprint, the high half; the
// low bits pick the home slot) and the record's offset in the slab plus one:
// 0 is an empty slot, offDead a tombstone left by an invalidation so that
// probes go on past it. Records are never written twice: a change appends a
// new record and kills the old slot, and a compaction copies the live ones
// into a new slab when the dead outweigh the living.
//
// Readers load the published view, probe with atomic loads, and decode rows
// whose strings point straight into the slab (unsafe.String), so a hit
// neither locks nor allocates. Writers are serialised by mu. A writer appends
// to the slab beyond the length readers see, publishes a view with the
// longer slab, and only then stores the slot: a reader that finds the slot
// and reloads the view sees the record.
//
// Record layout (little endian):
//
//	tenant index u32 | suffix length u8 | suffix | row count u16 | rows
//	row: kind index u8 | open u8 | owner index u32 | phone length u8 | phone | entity id length u16 | entity id
type flat struct {
	seed maphash.Seed

	mu   sync.Mutex
	view atomic.Pointer[flatView]
	// The writer's side: where each interned string sits in the view's
	// tables, and how much of the table and slab is in use or dead.
	tenantIdx map[string]uint32
	ownerIdx  map[string]uint32
	kindIdx   map[domain.EntityKind]uint8
	used      int // non-empty slots, tombstones included
	live      int // slots naming a live record
	deadBytes int // slab bytes of killed records
}

// flatView is one published state of the index. Its slices only ever grow
// in place beyond their length; a reader keeps the view it loaded.
type flatView struct {
	slots   []uint64
	slab    []byte
	tenants []string
	owners  []string
	kinds   []domain.EntityKind
}

const (
	offDead      = math.MaxUint32
	minSlots     = 16
	maxLoad      = 0.7 // resize above this share of used slots
	maxSlabBytes = math.MaxUint32 - 1
)

func newFlat(seed maphash.Seed) *flat {
	f := &flat{seed: seed}
	f.reset(0)
	return f
}

// reset empties the index, sized for n keys. Callers hold mu (or own f).
func (f *flat) reset(n int) {
	f.tenantIdx = map[string]uint32{}
	f.ownerIdx = map[string]uint32{}
	f.kindIdx = map[domain.EntityKind]uint8{}
	f.used, f.live, f.deadBytes = 0, 0, 0
	f.view.Store(&flatView{slots: make([]uint64, slotsFor(n))})
}

// slotsFor returns the power-of-two table size that holds n keys below
// maxLoad.
func slotsFor(n int) int {
	s := minSlots
	for float64(n) >= maxLoad*float64(s) {
		s <<= 1
	}
	return s
}

// hash is the key's hash; equal bytes hash equally as string or slice.
func (f *flat) hash(tenant string, suffix []byte) uint64 {
	return maphash.String(f.seed, tenant) ^ (maphash.Bytes(f.seed, suffix) * 0x9e3779b97f4a7c15)
}

func (f *flat) hashString(tenant, suffix string) uint64 {
	return maphash.String(f.seed, tenant) ^ (maphash.String(f.seed, suffix) * 0x9e3779b97f4a7c15)
}

// get appends the rows of (tenant, suffix) to buf. ok is false when the index
// has no live record of the key. It neither locks nor allocates while buf has
// room for the rows.
func (f *flat) get(h uint64, tenant string, suffix []byte, buf []Row) ([]Row, bool) {
	fp := uint32(h >> 32)
	v := f.view.Load()
probe:
	slots := v.slots
	mask := uint64(len(slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := atomic.LoadUint64(&slots[i])
		if s == 0 {
			return buf, false
		}
		off := uint32(s)
		if uint32(s>>32) != fp || off == offDead {
			continue
		}
		if int(off-1) >= len(v.slab) {
			// The slot was stored after this view was loaded: the view
			// published before it holds the record, at the same offset
			// unless a rebuild moved everything since; then probe anew.
			nv := f.view.Load()
			if unsafe.SliceData(nv.slots) != unsafe.SliceData(slots) {
				v = nv
				goto probe
			}
			v = nv
		}
		if rows, ok := v.decode(int(off-1), tenant, suffix, buf); ok {
			return rows, true
		}
	}
}

// decode appends the rows of the record at off to buf when the record is
// (tenant, suffix)'s.
func (v *flatView) decode(off int, tenant string, suffix []byte, buf []Row) ([]Row, bool) {
	b := v.slab[off:]
	if v.tenants[binary.LittleEndian.Uint32(b)] != tenant {
		return buf, false
	}
	sl := int(b[4])
	if string(b[5:5+sl]) != string(suffix) {
		return buf, false
	}
	b = b[5+sl:]
	n := int(binary.LittleEndian.Uint16(b))
	b = b[2:]
	for range n {
		var r Row
		r.Kind = v.kinds[b[0]]
		r.Open = b[1] == 1
		r.OwnerID = v.owners[binary.LittleEndian.Uint32(b[2:])]
		pl := int(b[6])
		r.Phone = unsafe.String(&b[7], pl)
		b = b[7+pl:]
		el := int(binary.LittleEndian.Uint16(b))
		if el > 0 {
			r.EntityID = unsafe.String(&b[2], el)
		}
		b = b[2+el:]
		buf = append(buf, r)
	}
	return buf, true
}

// recordLen returns the encoded size of a record, or -1 when a field does not
// fit the layout (such keys stay in the ristretto overlay).
func recordLen(suffix string, rows []Row) int {
	if len(suffix) > math.MaxUint8 || len(rows) == 0 || len(rows) > math.MaxUint16 {
		return -1
	}
	n := 5 + len(suffix) + 2
	for i := range rows {
		if len(rows[i].Phone) == 0 || len(rows[i].Phone) > math.MaxUint8 || len(rows[i].EntityID) > math.MaxUint16 {
			return -1
		}
		n += 7 + len(rows[i].Phone) + 2 + len(rows[i].EntityID)
	}
	return n
}

// fits reports whether the flat index can hold the key's rows.
func fits(suffix string, rows []Row) bool { return recordLen(suffix, rows) >= 0 }

// put records rows as (tenant, suffix)'s, replacing a live record of the key.
// It reports false when the rows do not fit the layout. Callers hold mu.
func (f *flat) put(tenant, suffix string, rows []Row) bool {
	n := recordLen(suffix, rows)
	if n < 0 {
		return false
	}
	h := f.hashString(tenant, suffix)
	f.kill(h, tenant, suffix)
	v := f.view.Load()
	if float64(f.used+1) > maxLoad*float64(len(v.slots)) || len(v.slab)+n > maxSlabBytes ||
		(f.deadBytes > 1<<20 && f.deadBytes > len(v.slab)/2) {
		v = f.rebuild(f.live + 1)
		if len(v.slab)+n > maxSlabBytes {
			return false
		}
	}
	nv := *v
	off := len(nv.slab)
	nv.slab = f.encode(&nv, nv.slab, tenant, suffix, rows)
	f.view.Store(&nv)
	f.place(nv.slots, h, uint32(off+1))
	return true
}

// encode appends the record to slab, interning tenant, owners and kinds into
// v's tables.
func (f *flat) encode(v *flatView, slab []byte, tenant, suffix string, rows []Row) []byte {
	slab = binary.LittleEndian.AppendUint32(slab, f.intern(v, tenant))
	slab = append(slab, byte(len(suffix)))
	slab = append(slab, suffix...)
	slab = binary.LittleEndian.AppendUint16(slab, uint16(len(rows)))
	for i := range rows {
		r := &rows[i]
		k, ok := f.kindIdx[r.Kind]
		if !ok {
			k = uint8(len(v.kinds))
			v.kinds = append(v.kinds, domain.InternKind(r.Kind))
			f.kindIdx[r.Kind] = k
		}
		o, ok := f.ownerIdx[r.OwnerID]
		if !ok {
			o = uint32(len(v.owners))
			v.owners = append(v.owners, r.OwnerID)
			f.ownerIdx[r.OwnerID] = o
		}
		open := byte(0)
		if r.Open {
			open = 1
		}
		slab = append(slab, k, open)
		slab = binary.LittleEndian.AppendUint32(slab, o)
		slab = append(slab, byte(len(r.Phone)))
		slab = append(slab, r.Phone...)
		slab = binary.LittleEndian.AppendUint16(slab, uint16(len(r.EntityID)))
		slab = append(slab, r.EntityID...)
	}
	return slab
}

func (f *flat) intern(v *flatView, tenant string) uint32 {
	t, ok := f.tenantIdx[tenant]
	if !ok {
		t = uint32(len(v.tenants))
		v.tenants = append(v.tenants, tenant)
		f.tenantIdx[tenant] = t
	}
	return t
}

// place stores slot value off for hash h in the first free slot of its
// probe sequence. Callers hold mu and made room.
func (f *flat) place(slots []uint64, h uint64, off uint32) {
	mask := uint64(len(slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		if slots[i] == 0 {
			atomic.StoreUint64(&slots[i], h>>32<<32|uint64(off))
			f.used++
			f.live++
			return
		}
	}
}

// kill turns the live slot of (tenant, suffix) into a tombstone, if any.
// Callers hold mu.
func (f *flat) kill(h uint64, tenant, suffix string) bool {
	v := f.view.Load()
	mask := uint64(len(v.slots) - 1)
	fp := uint32(h >> 32)
	for i := h & mask; ; i = (i + 1) & mask {
		s := v.slots[i]
		if s == 0 {
			return false
		}
		off := uint32(s)
		if uint32(s>>32) != fp || off == offDead {
			continue
		}
		if _, ok := v.decode(int(off-1), tenant, unsafe.Slice(unsafe.StringData(suffix), len(suffix)), nil); ok {
			atomic.StoreUint64(&v.slots[i], uint64(fp)<<32|offDead)
			f.live--
			f.deadBytes += v.recordSize(int(off - 1))
			return true
		}
	}
}

// recordSize returns the length of the record at off.
func (v *flatView) recordSize(off int) int {
	b := v.slab[off:]
	p := 5 + int(b[4])
	n := int(binary.LittleEndian.Uint16(b[p:]))
	p += 2
	for range n {
		p += 7 + int(b[p+6])
		p += 2 + int(binary.LittleEndian.Uint16(b[p:]))
	}
	return p
}

// rebuild copies the live records into a new slab and table sized for n
// keys, and publishes them. Readers of the old view keep it intact. Callers
// hold mu.
func (f *flat) rebuild(n int) *flatView {
	old := f.view.Load()
	nv := &flatView{
		slots:   make([]uint64, slotsFor(max(n, f.live))),
		slab:    make([]byte, 0, len(old.slab)-f.deadBytes+len(old.slab)/8),
		tenants: old.tenants,
		owners:  old.owners,
		kinds:   old.kinds,
	}
	f.used, f.live, f.deadBytes = 0, 0, 0
	for _, s := range old.slots {
		off := uint32(s)
		if s == 0 || off == offDead {
			continue
		}
		size := old.recordSize(int(off - 1))
		at := len(nv.slab)
		nv.slab = append(nv.slab, old.slab[off-1:int(off-1)+size]...)
		// The fingerprint is the hash's high half, and the home slot its low
		// bits: rehash from the key, since the slot keeps only the former.
		b := nv.slab[at:]
		suffix := unsafe.String(&b[5], int(b[4]))
		f.place(nv.slots, f.hashString(nv.tenants[binary.LittleEndian.Uint32(b)], suffix), uint32(at+1))
	}
	f.view.Store(nv)
	return nv
}

// flatBuilder builds a fresh index for a warm-up, off to the side: nothing
// is published until the builder is installed.
type flatBuilder struct {
	f    *flat
	v    flatView
	keys int
}

func newFlatBuilder(seed maphash.Seed) *flatBuilder {
	f := &flat{seed: seed, tenantIdx: map[string]uint32{}, ownerIdx: map[string]uint32{}, kindIdx: map[domain.EntityKind]uint8{}}
	return &flatBuilder{f: f, v: flatView{slots: make([]uint64, minSlots)}}
}

// add appends a key's record; false when it does not fit the layout.
func (b *flatBuilder) add(tenant, suffix string, rows []Row) bool {
	if !fits(suffix, rows) {
		return false
	}
	if float64(b.f.used+1) > maxLoad*float64(len(b.v.slots)) {
		// Grow the table only; records stay where they are.
		old := b.v.slots
		b.v.slots = make([]uint64, len(old)*2)
		b.f.used, b.f.live = 0, 0
		for _, s := range old {
			if s == 0 {
				continue
			}
			r := b.v.slab[uint32(s)-1:]
			b.f.place(b.v.slots, b.f.hashString(b.v.tenants[binary.LittleEndian.Uint32(r)], unsafe.String(&r[5], int(r[4]))), uint32(s))
		}
	}
	off := len(b.v.slab)
	if off+recordLen(suffix, rows) > maxSlabBytes {
		return false
	}
	b.v.slab = b.f.encode(&b.v, b.v.slab, tenant, suffix, rows)
	b.f.place(b.v.slots, b.f.hashString(tenant, suffix), uint32(off+1))
	b.keys++
	return true
}

// verify reads every record of the built index back through the reader's
// path and returns how many were found. Nothing else may touch b meanwhile.
func (b *flatBuilder) verify() int {
	v := b.v
	b.f.view.Store(&v)
	var buf [4]Row
	found := 0
	for _, s := range v.slots {
		off := uint32(s)
		if s == 0 || off == offDead {
			continue
		}
		r := v.slab[off-1:]
		tenant := v.tenants[binary.LittleEndian.Uint32(r)]
		suffix := r[5 : 5+int(r[4])]
		if _, ok := b.f.get(b.f.hash(tenant, suffix), tenant, suffix, buf[:0]); ok {
			found++
		}
	}
	return found
}

// install makes the built index f's. Callers hold f.mu.
func (b *flatBuilder) install(f *flat) {
	f.tenantIdx, f.ownerIdx, f.kindIdx = b.f.tenantIdx, b.f.ownerIdx, b.f.kindIdx
	f.used, f.live, f.deadBytes = b.f.used, b.f.live, 0
	v := b.v
	f.view.Store(&v)
}

// flatStats describes the index's memory.
type flatStats struct {
	Keys, Slots       int
	SlabBytes, Dead   int
	Tenants, Owners   int
	TableBytes, Bytes int
}

func (f *flat) stats() flatStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	v := f.view.Load()
	st := flatStats{Keys: f.live, Slots: len(v.slots), SlabBytes: len(v.slab), Dead: f.deadBytes,
		Tenants: len(v.tenants), Owners: len(v.owners), TableBytes: 8 * len(v.slots)}
	st.Bytes = st.TableBytes + cap(v.slab)
	return st
}
