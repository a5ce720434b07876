# memtypes: the heap by object type, for the memory benchmark (memtypes.c says what it prints).
MEMTYPES_MOD_DIR := $(USERMOD_DIR)
SRC_USERMOD_C += $(MEMTYPES_MOD_DIR)/memtypes.c
