/* SPDX-License-Identifier: MIT */
/*
 * vfio.c - the vfio backend: a PCIe NVMe controller bound to vfio-pci,
 * driven from user space (see <linux/vfio.h> and the kernel's
 * Documentation/driver-api/vfio.rst).
 *
 * One container per device, its IOMMU group, the type1v2 IOMMU.  The DMA
 * arena is mapped into the IOMMU at IOVA = arena offset, from the end of the
 * reserved first MiB to its end, and nothing else: a PRP outside the arena
 * is stopped by the IOMMU.  Configuration space goes through the config
 * region (vfio-pci virtualises what the host must own: BARs, MSI/MSI-X
 * control, and turns an Initiate FLR write into a reset).  BAR0 is mmapped
 * (registers and doorbells; pread/pwrite on the region when it cannot be).
 * MSI-X vectors are the eventfds given to VFIO_DEVICE_SET_IRQS; the host
 * kernel programs the MSI-X table's Message Address/Data (interrupt
 * remapping), so those writes are dropped here, while Vector Control (the
 * mask bit) reaches the device.  A device without MSI-X gets MSI the same way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "aionvme/arena.h"
#include "aionvme/dev.h"

#define PCI_CAP_PTR 0x34
#define PCI_STATUS 0x06
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CAP_ID_MSIX 0x11
#define PCI_CAP_ID_PM 0x01
#define PCI_COMMAND 0x04
#define PCI_COMMAND_MEMORY 0x2

struct vfio_priv {
	int container;
	int group;
	int device;
	uint64_t cfg_off;     /* config region's offset in the device fd */
	uint64_t cfg_size;
	uint64_t bar_off;     /* BAR0 region */
	uint64_t bar_size;
	volatile uint8_t *bar; /* mmap of BAR0, or NULL: pread/pwrite */
	uint32_t msix_lo;     /* MSI-X table in BAR0: [msix_lo, msix_hi), empty if none */
	uint32_t msix_hi;
	int irq_index;        /* VFIO_PCI_MSIX_IRQ_INDEX or VFIO_PCI_MSI_IRQ_INDEX */
	uint32_t dev_flags;   /* VFIO_DEVICE_FLAGS_* */
	uint64_t dma_iova;    /* what is mapped in the IOMMU */
	uint64_t dma_size;
	int doorbells_only;   /* a worker's view: only the doorbell op works */
	uint32_t pm_cap;      /* PCI Power Management capability, 0 if none */
	int mem_off;          /* Memory Space off or not in D0: BAR0 does not answer */
};

/*
 * vfio-pci makes the BAR0 mapping fault (SIGBUS) while the function's memory
 * space is off (Command.MSE = 0, or a D-state other than D0).  A function
 * there does not answer memory requests (PCI PM 1.2 5.4.1): reads complete
 * with all ones, writes are dropped.  That is what BAR0 accesses give here
 * while mem_off is set, re-evaluated after every config write and reset.
 */
static void refresh_mem(struct vfio_priv *v)
{
	uint16_t cmd = 0, pmcsr = 0;

	if (pread(v->device, &cmd, 2, (off_t)(v->cfg_off + PCI_COMMAND)) != 2) {
		v->mem_off = 1;
		return;
	}
	if (v->pm_cap && pread(v->device, &pmcsr, 2, (off_t)(v->cfg_off + v->pm_cap + 4)) != 2)
		pmcsr = 3;
	v->mem_off = !(cmd & PCI_COMMAND_MEMORY) || (pmcsr & 3) != 0;
}

static int cfg_rw(struct vfio_priv *v, uint32_t off, uint32_t len, void *buf, int wr)
{
	ssize_t n;

	if (off + len > v->cfg_size) {
		errno = EINVAL;
		return -1;
	}
	n = wr ? pwrite(v->device, buf, len, (off_t)(v->cfg_off + off))
	       : pread(v->device, buf, len, (off_t)(v->cfg_off + off));
	if (n < 0)
		return -1;
	if ((uint32_t)n != len) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static int vfio_cfg_read(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val)
{
	struct vfio_priv *v = dev->priv;
	uint32_t le = 0;

	if (!v || v->doorbells_only) {
		errno = EIO;
		return -1;
	}
	if (cfg_rw(v, off, len, &le, 0) < 0)
		return -1;
	*val = le; /* the config region is little endian, as is x86 */
	return 0;
}

static int vfio_cfg_write(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t val)
{
	struct vfio_priv *v = dev->priv;
	uint32_t le = (uint32_t)val;

	int rc;

	if (!v || v->doorbells_only) {
		errno = EIO;
		return -1;
	}
	rc = cfg_rw(v, off, len, &le, 1);
	refresh_mem(v);
	return rc;
}

static int bar_rw32(struct vfio_priv *v, uint32_t off, uint32_t *val, int wr)
{
	ssize_t n;

	if (v->mem_off) {
		if (!wr)
			*val = 0xffffffffu;
		return 0;
	}
	if (v->bar) {
		volatile uint32_t *p = (volatile uint32_t *)(v->bar + off);

		if (wr) {
			/* the device may read what was written before (SQEs): order them first */
			__atomic_thread_fence(__ATOMIC_RELEASE);
			*p = *val;
		} else {
			*val = *p;
			__atomic_thread_fence(__ATOMIC_ACQUIRE);
		}
		return 0;
	}
	n = wr ? pwrite(v->device, val, 4, (off_t)(v->bar_off + off))
	       : pread(v->device, val, 4, (off_t)(v->bar_off + off));
	if (n < 0)
		return -1;
	if (n != 4) {
		errno = EIO;
		return -1;
	}
	return 0;
}

static int bar_check(struct vfio_priv *v, uint32_t off, uint32_t len)
{
	if ((len != 4 && len != 8) || off % 4 || (uint64_t)off + len > v->bar_size) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int vfio_bar_read(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val)
{
	struct vfio_priv *v = dev->priv;
	uint32_t lo = 0, hi = 0;

	if (!v || v->doorbells_only) {
		errno = EIO;
		return -1;
	}
	if (bar_check(v, off, len) < 0)
		return -1;
	/* 64-bit registers as two dwords, low first, as Linux's lo_hi_readq */
	if (bar_rw32(v, off, &lo, 0) < 0)
		return -1;
	if (len == 8 && bar_rw32(v, off + 4, &hi, 0) < 0)
		return -1;
	*val = (uint64_t)hi << 32 | lo;
	return 0;
}

static int vfio_bar_write(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t val)
{
	struct vfio_priv *v = dev->priv;
	uint32_t lo = (uint32_t)val, hi = (uint32_t)(val >> 32);

	if (!v || v->doorbells_only) {
		errno = EIO;
		return -1;
	}
	if (bar_check(v, off, len) < 0)
		return -1;
	for (uint32_t o = off; o < off + len; o += 4) {
		uint32_t *w = o == off ? &lo : &hi;

		/* MSI-X Message Address/Data belong to the host kernel (it set them
		 * for VFIO_DEVICE_SET_IRQS); Vector Control (dword 3) is ours. */
		if (o >= v->msix_lo && o < v->msix_hi && (o - v->msix_lo) % 16 != 12)
			continue;
		if (bar_rw32(v, o, w, 1) < 0)
			return -1;
	}
	return 0;
}

static int vfio_doorbell(struct anv_dev *dev, uint32_t off, uint32_t val)
{
	struct vfio_priv *v = dev->priv;

	if (!v) {
		errno = EIO;
		return -1;
	}
	if (off % 4 || (uint64_t)off + 4 > v->bar_size) {
		errno = EINVAL;
		return -1;
	}
	return bar_rw32(v, off, &val, 1);
}

static int hot_reset(struct vfio_priv *v)
{
	struct vfio_pci_hot_reset_info *info;
	struct vfio_pci_hot_reset *rst;
	size_t sz = sizeof(*info);
	int rc = -1, gid;
	char link[64], path[256];
	ssize_t n;

	info = calloc(1, sz);
	if (!info)
		return -1;
	info->argsz = (uint32_t)sz;
	if (ioctl(v->device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) < 0 && errno != ENOSPC)
		goto out_info;
	sz = sizeof(*info) + info->count * sizeof(info->devices[0]);
	free(info);
	info = calloc(1, sz);
	if (!info)
		return -1;
	info->argsz = (uint32_t)sz;
	if (ioctl(v->device, VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, info) < 0)
		goto out_info;
	/* Only our group's fd can be given: every affected function must be in it. */
	snprintf(link, sizeof(link), "/proc/self/fd/%d", v->group);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		goto out_info;
	path[n] = 0;
	if (sscanf(path, "/dev/vfio/%d", &gid) != 1) {
		errno = EINVAL;
		goto out_info;
	}
	for (uint32_t i = 0; i < info->count; i++) {
		if (info->devices[i].group_id != (uint32_t)gid) {
			errno = EPERM; /* the slot holds functions of another IOMMU group */
			goto out_info;
		}
	}
	rst = calloc(1, sizeof(*rst) + sizeof(int32_t));
	if (!rst)
		goto out_info;
	rst->argsz = (uint32_t)(sizeof(*rst) + sizeof(int32_t));
	rst->count = 1;
	rst->group_fds[0] = v->group;
	rc = ioctl(v->device, VFIO_DEVICE_PCI_HOT_RESET, rst);
	free(rst);
out_info:
	free(info);
	return rc;
}

static int vfio_reset(struct anv_dev *dev, int kind)
{
	struct vfio_priv *v = dev->priv;
	int rc;

	if (!v || v->doorbells_only) {
		errno = EIO;
		return -1;
	}
	switch (kind) {
	case ANV_RESET_FLR:
		/* vfio-pci saves and restores config space and MSI-X around it */
		if (!(v->dev_flags & VFIO_DEVICE_FLAGS_RESET)) {
			errno = EOPNOTSUPP;
			return -1;
		}
		rc = ioctl(v->device, VFIO_DEVICE_RESET);
		refresh_mem(v);
		return rc;
	case ANV_RESET_HOT:
		rc = hot_reset(v);
		refresh_mem(v);
		return rc;
	default:
		/* power has no software path on real hardware (user callbacks do it) */
		errno = EOPNOTSUPP;
		return -1;
	}
}

static int set_irqs(int device, int index, const int *fds, int n)
{
	size_t sz = sizeof(struct vfio_irq_set) + (size_t)n * sizeof(int32_t);
	struct vfio_irq_set *set = calloc(1, sz);
	int rc;

	if (!set)
		return -1;
	set->argsz = (uint32_t)sz;
	set->flags = (n ? VFIO_IRQ_SET_DATA_EVENTFD : VFIO_IRQ_SET_DATA_NONE) |
		     VFIO_IRQ_SET_ACTION_TRIGGER;
	set->index = (uint32_t)index;
	set->start = 0;
	set->count = (uint32_t)n;
	for (int i = 0; i < n; i++)
		((int32_t *)set->data)[i] = fds[i];
	rc = ioctl(device, VFIO_DEVICE_SET_IRQS, set);
	free(set);
	return rc;
}

static void vfio_teardown(struct vfio_priv *v)
{
	if (v->bar)
		munmap((void *)v->bar, v->bar_size);
	if (v->device >= 0) {
		if (!v->doorbells_only)
			set_irqs(v->device, v->irq_index, NULL, 0);
		close(v->device);
	}
	if (v->dma_size) {
		struct vfio_iommu_type1_dma_unmap unmap = {
			.argsz = sizeof(unmap), .iova = v->dma_iova, .size = v->dma_size,
		};

		ioctl(v->container, VFIO_IOMMU_UNMAP_DMA, &unmap);
	}
	if (v->group >= 0)
		close(v->group);
	if (v->container >= 0)
		close(v->container);
	free(v);
}

static void vfio_close(struct anv_dev *dev)
{
	if (dev->priv)
		vfio_teardown(dev->priv);
	dev->priv = NULL;
	__anv_dev_close_irqs(dev);
}

static const struct anv_dev_ops vfio_ops = {
	.cfg_read = vfio_cfg_read,
	.cfg_write = vfio_cfg_write,
	.bar_read = vfio_bar_read,
	.bar_write = vfio_bar_write,
	.doorbell = vfio_doorbell,
	.reset = vfio_reset,
	.close = vfio_close,
};

static int region_info(int device, uint32_t index, struct vfio_region_info *ri)
{
	memset(ri, 0, sizeof(*ri));
	ri->argsz = sizeof(*ri);
	ri->index = index;
	return ioctl(device, VFIO_DEVICE_GET_REGION_INFO, ri);
}

/* Map BAR0 when the region allows it; else accesses go through pread/pwrite. */
static int map_bar0(struct vfio_priv *v, int prot)
{
	struct vfio_region_info ri;
	void *p;

	if (region_info(v->device, VFIO_PCI_BAR0_REGION_INDEX, &ri) < 0)
		return -1;
	if (!ri.size) {
		errno = ENODEV; /* no BAR0: not an NVMe controller */
		return -1;
	}
	v->bar_off = ri.offset;
	v->bar_size = ri.size;
	if (ri.flags & VFIO_REGION_INFO_FLAG_MMAP) {
		p = mmap(NULL, ri.size, prot, MAP_SHARED, v->device, (off_t)ri.offset);
		if (p != MAP_FAILED)
			v->bar = p;
	}
	return 0;
}

/* Where the MSI-X table sits in BAR0 (MSI-X capability: Table Offset/BIR, Table Size),
 * and where the PM capability is. */
static int find_msix(struct vfio_priv *v, int *table_size)
{
	uint16_t status = 0;
	uint8_t ptr = 0;

	*table_size = 0;
	if (cfg_rw(v, PCI_STATUS, 2, &status, 0) < 0)
		return -1;
	if (!(status & PCI_STATUS_CAP_LIST))
		return 0;
	if (cfg_rw(v, PCI_CAP_PTR, 1, &ptr, 0) < 0)
		return -1;
	for (int hops = 0; ptr >= 0x40 && hops < 48; hops++) {
		uint8_t id = 0, next = 0;
		uint16_t ctrl = 0;
		uint32_t table = 0;

		if (cfg_rw(v, ptr, 1, &id, 0) < 0 || cfg_rw(v, ptr + 1u, 1, &next, 0) < 0)
			return -1;
		if (id == PCI_CAP_ID_PM)
			v->pm_cap = ptr;
		if (id == PCI_CAP_ID_MSIX && !*table_size) {
			if (cfg_rw(v, ptr + 2u, 2, &ctrl, 0) < 0 || cfg_rw(v, ptr + 4u, 4, &table, 0) < 0)
				return -1;
			*table_size = (ctrl & 0x7ff) + 1;
			if ((table & 7) == 0) {
				v->msix_lo = table & ~7u;
				v->msix_hi = v->msix_lo + 16u * (uint32_t)*table_size;
			}
		}
		ptr = (uint8_t)(next & 0xfc);
	}
	return 0;
}

static int open_group(struct vfio_priv *v, int group_id)
{
	struct vfio_group_status st = { .argsz = sizeof(st) };
	char path[64];

	v->container = open("/dev/vfio/vfio", O_RDWR | O_CLOEXEC);
	if (v->container < 0)
		return -1;
	if (ioctl(v->container, VFIO_GET_API_VERSION) != VFIO_API_VERSION ||
	    ioctl(v->container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) != 1) {
		errno = ENOTSUP;
		return -1;
	}
	snprintf(path, sizeof(path), "/dev/vfio/%d", group_id);
	v->group = open(path, O_RDWR | O_CLOEXEC);
	if (v->group < 0)
		return -1;
	if (ioctl(v->group, VFIO_GROUP_GET_STATUS, &st) < 0)
		return -1;
	if (!(st.flags & VFIO_GROUP_FLAGS_VIABLE)) {
		errno = EBUSY; /* a device of the group is bound to a host driver */
		return -1;
	}
	if (ioctl(v->group, VFIO_GROUP_SET_CONTAINER, &v->container) < 0)
		return -1;
	return ioctl(v->container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
}

static int map_arena(struct vfio_priv *v, const struct anv_arena *arena)
{
	struct vfio_iommu_type1_dma_map map = { .argsz = sizeof(map) };

	if (arena->size <= ANV_ARENA_RESERVED) {
		errno = EINVAL;
		return -1;
	}
	map.flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
	map.vaddr = (uint64_t)(uintptr_t)(arena->base + ANV_ARENA_RESERVED);
	map.iova = ANV_ARENA_RESERVED;
	map.size = arena->size - ANV_ARENA_RESERVED;
	if (ioctl(v->container, VFIO_IOMMU_MAP_DMA, &map) < 0)
		return -1;
	v->dma_iova = map.iova;
	v->dma_size = map.size;
	return 0;
}

static int wire_irqs(struct vfio_priv *v, const int *irq_fds, int nvec, int *wired)
{
	struct vfio_irq_info ii = { .argsz = sizeof(ii), .index = VFIO_PCI_MSIX_IRQ_INDEX };
	int n;

	if (ioctl(v->device, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
		return -1;
	v->irq_index = VFIO_PCI_MSIX_IRQ_INDEX;
	if (!ii.count) {
		/* no MSI-X (some older drives): MSI, whose vectors VFIO wires the same way */
		ii.index = VFIO_PCI_MSI_IRQ_INDEX;
		if (ioctl(v->device, VFIO_DEVICE_GET_IRQ_INFO, &ii) < 0)
			return -1;
		v->irq_index = VFIO_PCI_MSI_IRQ_INDEX;
	}
	if (!ii.count) {
		errno = ENOTSUP; /* neither MSI-X nor MSI */
		return -1;
	}
	n = nvec < (int)ii.count ? nvec : (int)ii.count;
	if (set_irqs(v->device, v->irq_index, irq_fds, n) < 0)
		return -1;
	*wired = n;
	return 0;
}

/* Everything of anv_vfio_open() but the struct anv_dev: a new vfio_priv, or NULL + errno. */
static struct vfio_priv *vfio_attach(const char *bdf, int group_id, const struct anv_arena *arena,
				     const int *irq_fds, int nvec, int *wired)
{
	struct vfio_device_info di = { .argsz = sizeof(di) };
	struct vfio_region_info ri;
	struct vfio_priv *v;
	int table_size, err;

	if (nvec < 1 || nvec > ANV_MSIX_MAX_VECTORS || !arena || !arena->base) {
		errno = EINVAL;
		return NULL;
	}
	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->container = v->group = v->device = -1;
	if (open_group(v, group_id) < 0)
		goto undo;
	if (map_arena(v, arena) < 0)
		goto undo;
	v->device = ioctl(v->group, VFIO_GROUP_GET_DEVICE_FD, bdf);
	if (v->device < 0)
		goto undo;
	if (ioctl(v->device, VFIO_DEVICE_GET_INFO, &di) < 0)
		goto undo;
	if (!(di.flags & VFIO_DEVICE_FLAGS_PCI)) {
		errno = ENODEV;
		goto undo;
	}
	v->dev_flags = di.flags;
	if (region_info(v->device, VFIO_PCI_CONFIG_REGION_INDEX, &ri) < 0)
		goto undo;
	v->cfg_off = ri.offset;
	v->cfg_size = ri.size;
	if (map_bar0(v, PROT_READ | PROT_WRITE) < 0)
		goto undo;
	if (find_msix(v, &table_size) < 0)
		goto undo;
	if (wire_irqs(v, irq_fds, nvec, wired) < 0)
		goto undo;
	refresh_mem(v);
	return v;
undo:
	err = errno;
	vfio_teardown(v);
	errno = err;
	return NULL;
}

int anv_vfio_open(struct anv_dev *dev, const char *bdf, int group_id,
		  const struct anv_arena *arena, const int *irq_fds, int nvec)
{
	int wired = 0;
	struct vfio_priv *v = vfio_attach(bdf, group_id, arena, irq_fds, nvec, &wired);

	if (!v)
		return -1;
	/* eventfds beyond what the device has would never fire */
	for (int i = wired; i < nvec; i++)
		close(irq_fds[i]);
	return __anv_dev_init(dev, &vfio_ops, v, irq_fds, wired);
}

int anv_vfio_release(struct anv_dev *dev)
{
	if (dev->ops != &vfio_ops) {
		errno = EOPNOTSUPP;
		return -1;
	}
	if (dev->priv)
		vfio_teardown(dev->priv);
	dev->priv = NULL;
	return 0;
}

int anv_vfio_reopen(struct anv_dev *dev, const char *bdf, int group_id,
		    const struct anv_arena *arena)
{
	int wired = 0;
	struct vfio_priv *v;

	if (dev->ops != &vfio_ops || dev->priv) {
		errno = dev->ops != &vfio_ops ? EOPNOTSUPP : EBUSY;
		return -1;
	}
	v = vfio_attach(bdf, group_id, arena, dev->irq_fd, dev->nvec, &wired);
	if (!v)
		return -1;
	dev->priv = v;
	return 0;
}

int anv_vfio_irq_kind(struct anv_dev *dev)
{
	struct vfio_priv *v = dev->priv;

	if (dev->ops != &vfio_ops || !v) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return v->irq_index == VFIO_PCI_MSIX_IRQ_INDEX ? ANV_VFIO_IRQ_MSIX : ANV_VFIO_IRQ_MSI;
}

int anv_vfio_doorbell_fd(struct anv_dev *dev)
{
	struct vfio_priv *v = dev->priv;

	if (dev->ops != &vfio_ops || !v) {
		errno = EOPNOTSUPP;
		return -1;
	}
	return v->device;
}

int anv_vfio_open_doorbells(struct anv_dev *dev, int device_fd)
{
	struct vfio_priv *v = calloc(1, sizeof(*v));
	int err;

	if (!v) {
		close(device_fd);
		return -1;
	}
	v->container = v->group = -1;
	v->device = device_fd;
	v->doorbells_only = 1;
	if (map_bar0(v, PROT_WRITE | PROT_READ) < 0)
		goto undo;
	memset(dev, 0, sizeof(*dev));
	dev->ops = &vfio_ops;
	dev->priv = v;
	for (int i = 0; i < ANV_MSIX_MAX_VECTORS; i++)
		dev->irq_fd[i] = -1;
	return 0;
undo:
	err = errno;
	vfio_teardown(v);
	errno = err;
	return -1;
}
