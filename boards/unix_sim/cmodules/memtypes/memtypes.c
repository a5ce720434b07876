// memtypes.dump(): the GC heap by object type, for `borne bench memory-budget` on a unix port
// built with the application frozen in (boards/unix_sim/manifest.py says how). The stock
// micropython.mem_info(1) names only a few types per block (tuple, list, dict, str, function,
// module); every other object, and every table an object owns, is an anonymous "h". This walks
// the same heap and prints one line per type:
//
//   @mem <objects> <bytes> <kind> <name>
//
// kind: "class" (a class made at run time: its type object, locals dict and table; name is the
// class's), "module" (its object, globals dict and table; name is the module's), "instance" (of
// a Python class: the object and its members table; name is the class's), "function" (a def, an
// async def or a generator function: a row per module that defined them, named for it, a def's
// and an async def's apart), "coroutine" (a running async def's or generator's frame, a row per
// module of its code), "builtin" (any other typed object, with the table or data block it owns:
// dict, list, str, bytearray, ...), "untyped" (blocks no typed object owns: raw buffers that
// belong to C code, such as a socket's or the qstr pools). Bytes are whole GC blocks.
//
// memtypes.holders(class_name, depth): who keeps an object alive. For each instance of that
// class, the blocks that point at it ("@holder <level> <address> <kind> <name> +<word>", and a
// coroutine's function), then theirs, `depth` levels up (a debugging aid: a socket
// still referenced after its connection ended, say).
//
// Unix only: a block's first word is read as a type pointer only when it points into the heap
// or into the executable's own image (the linker's __executable_start.._end), so raw data is
// never dereferenced. Diagnostic: not part of any charger's firmware.
#include <stdint.h>

#include "py/bc.h"
#include "py/gc.h"
#include "py/mpstate.h"
#include "py/obj.h"
#include "py/objarray.h"
#include "py/objfun.h"
#include "py/objlist.h"
#include "py/objmodule.h"
#include "py/objstr.h"
#include "py/objtype.h"
#include "py/runtime.h"

#if MICROPY_ENABLE_GC && !MICROPY_GC_SPLIT_HEAP

extern char __executable_start, _end;

#define AT_HEAD (1)
#define AT_TAIL (2)
#define KINDS (512)   // rows: distinct types, the last one for any beyond
#define OWNERS (2048) // dicts owned by a module or a class, not counted twice

static size_t kind_of(size_t block) {
    const byte *atb = MP_STATE_MEM(area).gc_alloc_table_start;
    return (atb[block / 4] >> (2 * (block & 3))) & 3;
}

static size_t n_blocks(void) {
    return MP_STATE_MEM(area).gc_alloc_table_byte_len * 4;
}

static bool is_head(const void *p) {
    const byte *start = MP_STATE_MEM(area).gc_pool_start;
    return ((uintptr_t)p & (MICROPY_BYTES_PER_GC_BLOCK - 1)) == 0
           && (const byte *)p >= start && (const byte *)p < MP_STATE_MEM(area).gc_pool_end
           && kind_of(((const byte *)p - start) / MICROPY_BYTES_PER_GC_BLOCK) == AT_HEAD;
}

static bool is_static(const void *p) {
    return ((uintptr_t)p & (sizeof(void *) - 1)) == 0
           && (const char *)p >= &__executable_start && (const char *)p < &_end;
}

// Bytes of the heap block at p, or 0 if p is not the head of one.
static size_t owned(const void *p) {
    return (p != NULL && is_head(p)) ? gc_nbytes(p) : 0;
}

// py/objgenerator.c's mp_obj_gen_instance_t, which no header exports.
typedef struct {
    mp_obj_base_t base;
    mp_obj_t pend_exc;
    mp_code_state_t code_state;
} gen_t;

// The name of the module whose code a function runs ("" where it cannot be read).
static qstr module_of(const mp_obj_fun_bc_t *f) {
    const mp_module_context_t *c = f->context;
    if (c == NULL || !(is_head(c) || is_static(c))) {
        return MP_QSTR_;
    }
    const mp_obj_dict_t *g = c->module.globals;
    if (g == NULL || !(is_head(g) || is_static(g))) {
        return MP_QSTR_;
    }
    mp_map_elem_t *e = mp_map_lookup((mp_map_t *)&g->map, MP_OBJ_NEW_QSTR(MP_QSTR___name__), MP_MAP_LOOKUP);
    return (e != NULL && mp_obj_is_qstr(e->value)) ? MP_OBJ_QSTR_VALUE(e->value) : MP_QSTR_;
}

static size_t dict_bytes(const mp_obj_dict_t *d) {
    return owned(d) + (is_head(d) ? owned(d->map.table) : 0);
}

typedef struct {
    const void *key;
    const char *kind;
    qstr name;
    size_t n;
    size_t bytes;
} row_t;

static row_t rows[KINDS];
static const void *owners[OWNERS];

// Counts an object in its row, made at its first one. The last row is keyed by nothing and
// named "builtin object": it takes every type that finds no row left.
static void add(size_t *nr, const void *key, const char *kind, qstr name, size_t bytes) {
    size_t i = 0;
    while (i < *nr && !(rows[i].key == key && rows[i].kind == kind)) {
        i++;
    }
    if (i == *nr) {
        if (*nr == KINDS - 1) {
            key = NULL;
            kind = "builtin";
            name = MP_QSTR_object;
        }
        if (*nr < KINDS) {
            rows[i].key = key;
            rows[i].kind = kind;
            rows[i].name = name;
            rows[i].n = rows[i].bytes = 0;
            (*nr)++;
        } else {
            i = KINDS - 1;
        }
    }
    rows[i].n++;
    rows[i].bytes += bytes;
}

static mp_obj_t memtypes_dump(void) {
    const byte *start = MP_STATE_MEM(area).gc_pool_start;
    size_t nb = n_blocks();
    size_t n_own = 0;
    // First pass: the dicts that belong to a module or a class are counted with it.
    for (size_t b = 0; b < nb; b++) {
        if (kind_of(b) != AT_HEAD) {
            continue;
        }
        void **p = (void **)(start + b * MICROPY_BYTES_PER_GC_BLOCK);
        if (n_own == OWNERS) {
            break;
        }
        if (*p == &mp_type_module) {
            owners[n_own++] = ((mp_obj_module_t *)p)->globals;
        } else if (*p == &mp_type_type && MP_OBJ_TYPE_HAS_SLOT((mp_obj_type_t *)p, locals_dict)) {
            owners[n_own++] = MP_OBJ_TYPE_GET_SLOT((mp_obj_type_t *)p, locals_dict);
        }
    }
    size_t nr = 0, typed = 0, all = 0;
    for (size_t b = 0; b < nb; b++) {
        if (kind_of(b) != AT_HEAD) {
            continue;
        }
        void **p = (void **)(start + b * MICROPY_BYTES_PER_GC_BLOCK);
        size_t bytes = gc_nbytes(p);
        all += bytes;
        const mp_obj_type_t *t = (const mp_obj_type_t *)*p;
        if (t == NULL || !(is_head(t) || is_static(t)) || t->base.type != &mp_type_type) {
            continue;  // not an object: a table, a buffer, a raw block
        }
        if (t == &mp_type_dict) {
            size_t i = 0;
            while (i < n_own && owners[i] != (void *)p) {
                i++;
            }
            if (i < n_own) {
                continue;  // counted with its module or class
            }
            bytes += owned(((mp_obj_dict_t *)p)->map.table);
            add(&nr, t, "builtin", t->name, bytes);
        } else if (t == &mp_type_module) {
            mp_obj_dict_t *g = ((mp_obj_module_t *)p)->globals;
            bytes += dict_bytes(g);
            mp_map_elem_t *e = mp_map_lookup(&g->map, MP_OBJ_NEW_QSTR(MP_QSTR___name__), MP_MAP_LOOKUP);
            qstr name = (e != NULL && mp_obj_is_qstr(e->value)) ? MP_OBJ_QSTR_VALUE(e->value) : MP_QSTR_;
            add(&nr, p, "module", name, bytes);
        } else if (t == &mp_type_type) {
            const mp_obj_type_t *c = (const mp_obj_type_t *)p;
            if (MP_OBJ_TYPE_HAS_SLOT(c, locals_dict)) {
                bytes += dict_bytes(MP_OBJ_TYPE_GET_SLOT(c, locals_dict));
            }
            add(&nr, p, "class", c->name, bytes);
        } else if (mp_obj_is_instance_type(t)) {
            bytes += owned(((mp_obj_instance_t *)p)->members.table);
            add(&nr, t, "instance", t->name, bytes);
        } else if (t == &mp_type_fun_bc || t == &mp_type_gen_wrap) {
            const mp_obj_fun_bc_t *f = (const mp_obj_fun_bc_t *)p;
            // Async defs apart (keyed one byte on), under the same kind and name.
            add(&nr, (const byte *)f->context + (t == &mp_type_gen_wrap), "function", module_of(f), bytes);
        } else if (t == &mp_type_gen_instance) {
            const mp_obj_fun_bc_t *f = ((const gen_t *)p)->code_state.fun_bc;
            add(&nr, f == NULL ? NULL : f->context, "coroutine", f == NULL ? t->name : module_of(f), bytes);
        } else {
            if (t == &mp_type_list) {
                bytes += owned(((mp_obj_list_t *)p)->items);
            } else if (t == &mp_type_bytearray) {
                bytes += owned(((mp_obj_array_t *)p)->items);
            } else if (t == &mp_type_str || t == &mp_type_bytes) {
                bytes += owned(((mp_obj_str_t *)p)->data);
            }
            add(&nr, t, "builtin", t->name, bytes);
        }
    }
    for (size_t i = 0; i < nr; i++) {
        typed += rows[i].bytes;
        mp_printf(&mp_plat_print, "@mem %u %u %s %s\n", (uint)rows[i].n, (uint)rows[i].bytes,
            rows[i].kind, qstr_str(rows[i].name));
    }
    mp_printf(&mp_plat_print, "@mem 0 %u untyped -\n", (uint)(all - typed));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(memtypes_dump_obj, memtypes_dump);


// The kind of object at heap block p, its name in *name.
static const char *type_name(const void *p, qstr *name) {
    const mp_obj_type_t *t = (const mp_obj_type_t *)*(void *const *)p;
    *name = MP_QSTR_;
    if (t == NULL || !(is_head(t) || is_static(t)) || t->base.type != &mp_type_type) {
        return "untyped";
    }
    *name = t->name;
    if (t == &mp_type_fun_bc || t == &mp_type_gen_wrap) {
        *name = module_of((const mp_obj_fun_bc_t *)p);
        return "function";
    }
    if (t == &mp_type_gen_instance) {
        const mp_obj_fun_bc_t *f = ((const gen_t *)p)->code_state.fun_bc;
        *name = f ? module_of(f) : MP_QSTR_;
        return "coroutine";
    }
    return "object";
}

// The blocks (at most 12 a level) whose words point at obj, printed (a coroutine with its
// function's name); their own holders in turn (but a function's), up to level max.
static void holders_of(const void *obj, int depth, int max) {
    const byte *start = MP_STATE_MEM(area).gc_pool_start;
    size_t nb = n_blocks();
    size_t shown = 0;
    for (size_t b = 0; b < nb && shown < 12; b++) {
        if (kind_of(b) != AT_HEAD) {
            continue;
        }
        void **p = (void **)(start + b * MICROPY_BYTES_PER_GC_BLOCK);
        if ((const void *)p == obj) {
            continue;
        }
        size_t words = gc_nbytes(p) / sizeof(void *);
        for (size_t w = 0; w < words; w++) {
            if (p[w] == obj) {
                qstr n;
                const char *k = type_name(p, &n);
                mp_printf(&mp_plat_print, "@holder %d %p %s %s +%u", depth, p, k, qstr_str(n), (uint)w);
                if (k[0] == 'c') {  // a coroutine: its function's name too
                    const mp_obj_fun_bc_t *f = ((const gen_t *)p)->code_state.fun_bc;
                    mp_printf(&mp_plat_print, " %s", f ? qstr_str(mp_obj_fun_bc_get_name(f)) : "?");
                }
                mp_printf(&mp_plat_print, "\n");
                shown++;
                if (depth < max && k[0] != 'f') {
                    holders_of(p, depth + 1, max);
                }
                break;
            }
        }
    }
}

static mp_obj_t memtypes_holders(mp_obj_t name_in, mp_obj_t depth_in) {
    qstr name = mp_obj_str_get_qstr(name_in);
    const byte *start = MP_STATE_MEM(area).gc_pool_start;
    size_t nb = n_blocks();
    for (size_t b = 0; b < nb; b++) {
        if (kind_of(b) != AT_HEAD) {
            continue;
        }
        void **p = (void **)(start + b * MICROPY_BYTES_PER_GC_BLOCK);
        const mp_obj_type_t *t = (const mp_obj_type_t *)*p;
        if (t == NULL || !(is_head(t) || is_static(t)) || t->base.type != &mp_type_type) {
            continue;
        }
        if (t->name == name) {
            mp_printf(&mp_plat_print, "@holder 0 %p %s\n", p, qstr_str(name));
            holders_of(p, 1, mp_obj_get_int(depth_in));
        }
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(memtypes_holders_obj, memtypes_holders);

static const mp_rom_map_elem_t memtypes_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_memtypes) },
    { MP_ROM_QSTR(MP_QSTR_dump), MP_ROM_PTR(&memtypes_dump_obj) },
    { MP_ROM_QSTR(MP_QSTR_holders), MP_ROM_PTR(&memtypes_holders_obj) },
};
static MP_DEFINE_CONST_DICT(memtypes_globals, memtypes_globals_table);

const mp_obj_module_t memtypes_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&memtypes_globals,
};

MP_REGISTER_MODULE(MP_QSTR_memtypes, memtypes_module);

#endif
