#!/bin/sh
# SPDX-License-Identifier: MIT
# The libtool version of libtroupe (current:revision:age), kept in one place.
# Bump per the libtool rules on every release that changes the ABI.
echo "0:0:0"
