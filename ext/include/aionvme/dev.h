/* SPDX-License-Identifier: MIT */
/*
 * dev.h - the one device boundary.  Everything above talks to an NVMe
 * controller through struct anv_dev_ops; each backend (sim, qemu, vfio)
 * implements it in src/dev/.
 */
#ifndef AIONVME_DEV_H
#define AIONVME_DEV_H

#include <stdint.h>

#include "aionvme/nvme.h"

struct anv_dev;

enum anv_reset_kind {
	ANV_RESET_FLR = 1,        /* PCIe function level reset */
	ANV_RESET_HOT = 2,        /* PCIe hot reset */
	ANV_RESET_POWER_OFF = 3,  /* remove power (abrupt) */
	ANV_RESET_POWER_ON = 4,   /* restore power */
};

/**
 * struct anv_dev_ops - what a backend provides
 * @cfg_read:  read @len (1, 2, 4) bytes of PCI configuration space at @off
 * @cfg_write: write them
 * @bar_read:  read @len (4 or 8) bytes of BAR0 at @off
 * @bar_write: write them, with the register's side effects
 * @doorbell:  fast path of bar_write for a doorbell register
 * @reset:     a reset of kind enum anv_reset_kind
 * @close:     release the backend; the device goes away
 *
 * Every op returns 0, or -1 with errno set (EIO: the device is gone).
 */
struct anv_dev_ops {
	int (*cfg_read)(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val);
	int (*cfg_write)(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t val);
	int (*bar_read)(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t *val);
	int (*bar_write)(struct anv_dev *dev, uint32_t off, uint32_t len, uint64_t val);
	int (*doorbell)(struct anv_dev *dev, uint32_t off, uint32_t val);
	int (*reset)(struct anv_dev *dev, int kind);
	void (*close)(struct anv_dev *dev);
};

/**
 * struct anv_dev - a device reached through a backend
 * @ops:    the backend
 * @irq_fd: one eventfd per MSI-X vector, readable when the vector fired
 * @nvec:   number of vectors wired
 * @priv:   backend state
 */
struct anv_dev {
	const struct anv_dev_ops *ops;
	int irq_fd[ANV_MSIX_MAX_VECTORS];
	int nvec;
	void *priv;
};

/* For backends (src/dev/common.c): wire @dev to @ops and the MSI-X eventfds. */
int __anv_dev_init(struct anv_dev *dev, const struct anv_dev_ops *ops, void *priv,
		   const int *irq_fds, int nvec);
/* For backends: close the MSI-X eventfds the device owns. */
void __anv_dev_close_irqs(struct anv_dev *dev);

/**
 * anv_sim_open() - attach to a simulated controller process
 * @sock: connected unix socket to the device process (ownership taken)
 * @bar_fd: memfd of the shared BAR0 page (ownership taken)
 * @db_fd: eventfd that wakes the device after a doorbell write (ownership taken)
 * @irq_fds: @nvec eventfds, one per MSI-X vector (ownership taken)
 *
 * Return: 0, or -1 with errno set.
 */
int anv_sim_open(struct anv_dev *dev, int sock, int bar_fd, int db_fd,
		 const int *irq_fds, int nvec);

/**
 * anv_sim_open_doorbells() - the doorbell path alone, for a worker process
 * @bar_fd/@db_fd: the shared BAR page and the doorbell eventfd of a device
 *                 the parent opened (ownership taken)
 *
 * Only @doorbell works; every other op fails with EIO.
 *
 * Return: 0, or -1 with errno set.
 */
int anv_sim_open_doorbells(struct anv_dev *dev, int bar_fd, int db_fd);

/**
 * anv_sim_doorbell_fds() - the fds a worker needs for anv_sim_open_doorbells()
 *
 * The fds stay owned by @dev.  Return: 0, or -1 with errno EOPNOTSUPP when
 * @dev is not a simulator.
 */
int anv_sim_doorbell_fds(struct anv_dev *dev, int *bar_fd, int *db_fd);

/**
 * anv_sim_call() - a request to the simulator's control plane
 * @op: ANV_SIM_OP_*
 * @payload/@plen: request payload (JSON for ANV_SIM_OP_CONTROL)
 * @rbuf/@rcap/@rlen: reply payload buffer, its size, and the bytes returned
 *
 * Return: 0, or -1 with errno set (EIO when the process is gone, or the
 * device's own error number).
 */
int anv_sim_call(struct anv_dev *dev, uint32_t op, uint32_t off, uint32_t len,
		 uint64_t val, const void *payload, uint32_t plen, uint64_t *rval,
		 void *rbuf, uint32_t rcap, uint32_t *rlen);

/**
 * anv_sim_lost() - whether @dev's request stream to the device process broke
 *
 * After a request timed out, or its reply was cut short, the socket is
 * closed (a late reply must not answer a later request): the device is dead
 * to this host.  Return: 1 when so, 0 otherwise (also for other backends).
 */
int anv_sim_lost(struct anv_dev *dev);

/**
 * anv_qemu_open() - drive QEMU's NVMe controller over a qtest socket
 * @sock: connected qtest socket (ownership taken)
 * @devfn: PCI device/function of the controller on bus 0 (device << 3 | fn)
 * @irq_fds: @nvec eventfds, one per MSI-X vector (ownership taken)
 *
 * Return: 0, or -1 with errno set.
 */
int anv_qemu_open(struct anv_dev *dev, int sock, uint32_t devfn, const int *irq_fds, int nvec);

/* Where MSI-X messages land: @nvec dwords of guest RAM, one per vector. */
void anv_qemu_set_mailbox(struct anv_dev *dev, uint32_t *mailbox);

/**
 * anv_qemu_doorbell_fds() - a proxy page and an eventfd through which worker
 * processes ring doorbells (anv_proxy_open_doorbells()); a thread forwards
 * every ring to QEMU.  The device keeps owning both.
 */
int anv_qemu_doorbell_fds(struct anv_dev *dev, int *page_fd, int *efd);

/* In a proxy page, the count of rings of the doorbell at offset X is at X + this. */
#define ANV_PROXY_SEQ_OFF 0x1000u

/**
 * anv_proxy_open_doorbells() - ring doorbells through a proxy page (see
 * anv_qemu_doorbell_fds()); only the doorbell op works.  Takes ownership of
 * @page_fd and @efd.
 */
int anv_proxy_open_doorbells(struct anv_dev *dev, int page_fd, int efd);

/* After QEMU was started again (power cycle): talk over @sock from now on. */
int anv_qemu_reconnect(struct anv_dev *dev, int sock);

struct anv_arena;

/**
 * anv_vfio_open() - drive a PCIe controller bound to vfio-pci (src/dev/vfio.c)
 * @bdf: its PCI address, "0000:01:00.0"
 * @group_id: its IOMMU group (/dev/vfio/@group_id); every other device of
 *            the group must be bound to vfio-pci or to no driver (EBUSY)
 * @arena: the DMA arena, mapped into the IOMMU at IOVA = offset from
 *         ANV_ARENA_RESERVED to its end (nothing else is mapped)
 * @irq_fds: @nvec eventfds (ownership taken); the first min(@nvec, the
 *           device's MSI-X table size) are its vectors through
 *           VFIO_DEVICE_SET_IRQS (MSI when the device has no MSI-X), the
 *           rest are closed; dev->nvec says how many were wired
 *
 * A container of its own per device (type1v2 IOMMU).  BAR0 is mmapped where
 * vfio-pci allows it, else reached with pread/pwrite.  Writes to the MSI-X
 * table's Message Address/Data are dropped (the host kernel owns them);
 * Vector Control reaches the device.  Resets: ANV_RESET_FLR is
 * VFIO_DEVICE_RESET; ANV_RESET_HOT is VFIO_DEVICE_PCI_HOT_RESET when every
 * function of the slot is in this group (else EPERM); power is EOPNOTSUPP.
 *
 * Return: 0, or -1 with errno set.
 */
int anv_vfio_open(struct anv_dev *dev, const char *bdf, int group_id,
		  const struct anv_arena *arena, const int *irq_fds, int nvec);

/**
 * anv_vfio_release() - give the device back (container, group, device fds,
 * BAR0 mapping, IOMMU mapping) but keep @dev and its eventfds, for a power
 * cycle; every op fails with EIO until anv_vfio_reopen().
 */
int anv_vfio_release(struct anv_dev *dev);

/**
 * anv_vfio_reopen() - open the function again after anv_vfio_release(), with
 * the same eventfds (the pollers keep waiting on them).
 *
 * Return: 0, or -1 with errno set.
 */
int anv_vfio_reopen(struct anv_dev *dev, const char *bdf, int group_id,
		    const struct anv_arena *arena);

enum { ANV_VFIO_IRQ_MSIX = 1, ANV_VFIO_IRQ_MSI = 2 };

/* How a vfio device's vectors are wired: ANV_VFIO_IRQ_MSIX or _MSI; -1 + EOPNOTSUPP if not vfio. */
int anv_vfio_irq_kind(struct anv_dev *dev);

/**
 * anv_vfio_doorbell_fd() - the VFIO device fd, for a worker process's
 * anv_vfio_open_doorbells(); stays owned by @dev.  -1 + EOPNOTSUPP if not vfio.
 */
int anv_vfio_doorbell_fd(struct anv_dev *dev);

/**
 * anv_vfio_open_doorbells() - in a worker: map BAR0 of the VFIO device fd
 * @device_fd (ownership taken) another process opened; only @doorbell works
 * (the parent's container keeps the arena mapped in the IOMMU).
 *
 * Return: 0, or -1 with errno set.
 */
int anv_vfio_open_doorbells(struct anv_dev *dev, int device_fd);

/* Wire protocol between the host and the simulator process (little endian). */
enum {
	ANV_SIM_OP_CFG_READ = 1,
	ANV_SIM_OP_CFG_WRITE = 2,
	ANV_SIM_OP_BAR_READ = 3,
	ANV_SIM_OP_BAR_WRITE = 4,
	ANV_SIM_OP_RESET = 5,
	ANV_SIM_OP_CONTROL = 6, /* JSON request, JSON reply */
};

struct anv_sim_req {
	uint32_t op;
	uint32_t off;
	uint32_t len;
	uint32_t plen; /* payload bytes following */
	uint64_t val;
};

struct anv_sim_rep {
	int32_t err; /* 0 or an errno value */
	uint32_t plen;
	uint64_t val;
};

#endif /* AIONVME_DEV_H */
