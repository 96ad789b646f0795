# make install PREFIX=... (C users). Included by the Makefile.
# The header, the shared library with a versioned soname and its symlinks,
# the static library, and a pkg-config file (last_call.pc). Linux (ELF).

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
# The ABI version in the soname: the major, or 0.minor before 1.0 (where a
# minor release may break the ABI), as Cargo's semver reads versions.
SOVERSION := $(shell echo $(VERSION) | awk -F. '{ print ($$1 == 0) ? $$1 "." $$2 : $$1 }')
# A program linked with `pkg-config --libs last_call` must find the library
# at run time as built, with no ldconfig (which needs root, and does not
# cover a prefix outside ld.so.conf) and no LD_LIBRARY_PATH. So the .pc
# file's Libs carries `-Wl,-rpath,${libdir}` for any LIBDIR the dynamic
# loader does not search by itself (/usr/local/lib included: it is in
# ld.so.conf only through the cache that ldconfig writes). Packagers
# installing to a system directory get no rpath, or set PC_RPATH= to drop it.
SYSTEM_LIBDIRS := /lib /usr/lib /lib64 /usr/lib64 $(addprefix /usr/lib/,$(shell $(CC) -print-multiarch 2>/dev/null))
PC_RPATH ?= $(if $(filter $(abspath $(LIBDIR)),$(SYSTEM_LIBDIRS)),,-Wl,-rpath,$${libdir})

install:
	$(CARGO) rustc --locked --release --lib --crate-type cdylib,staticlib $(RELEASE_PROFILE) \
	  --target-dir $(RELEASE_TARGET) -- -C link-arg=-Wl,-soname,liblast_call.so.$(SOVERSION)
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/last_call.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(RELEASE_TARGET)/release/liblast_call.so $(DESTDIR)$(LIBDIR)/liblast_call.so.$(VERSION)
	ln -sf liblast_call.so.$(VERSION) $(DESTDIR)$(LIBDIR)/liblast_call.so.$(SOVERSION)
	ln -sf liblast_call.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/liblast_call.so
	install -m 644 $(RELEASE_TARGET)/release/liblast_call.a $(DESTDIR)$(LIBDIR)/
	# The archive carries the debug info of std and the crates (22 MB; 13.6 MB without).
	strip --strip-debug $(DESTDIR)$(LIBDIR)/liblast_call.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	  -e 's|@VERSION@|$(VERSION)|' -e 's|@RPATH@|$(PC_RPATH)|' pkgconfig/last_call.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/last_call.pc
