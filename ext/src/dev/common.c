/* SPDX-License-Identifier: MIT */
/*
 * common.c - what every backend does the same way: wiring a struct anv_dev
 * to its ops and MSI-X eventfds, and closing those eventfds.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "aionvme/dev.h"

int __anv_dev_init(struct anv_dev *dev, const struct anv_dev_ops *ops, void *priv,
		   const int *irq_fds, int nvec)
{
	if (nvec < 1 || nvec > ANV_MSIX_MAX_VECTORS) {
		errno = EINVAL;
		return -1;
	}
	memset(dev, 0, sizeof(*dev));
	dev->ops = ops;
	dev->priv = priv;
	dev->nvec = nvec;
	for (int i = 0; i < ANV_MSIX_MAX_VECTORS; i++)
		dev->irq_fd[i] = i < nvec ? irq_fds[i] : -1;
	return 0;
}

void __anv_dev_close_irqs(struct anv_dev *dev)
{
	for (int i = 0; i < dev->nvec; i++) {
		if (dev->irq_fd[i] >= 0)
			close(dev->irq_fd[i]);
		dev->irq_fd[i] = -1;
	}
	dev->nvec = 0;
}
