// linattn: linear attention with constant-time lookups and fixed-size representations.
// The umbrella header of the core library (no ML framework needed).
#pragma once

#include "linattn/core/error.h"
#include "linattn/core/file_io.h"
#include "linattn/core/types.h"
#include "linattn/core/threads.h"
#include "linattn/core/view.h"
#include "linattn/memory/bank.h"
#include "linattn/memory/compress.h"
#include "linattn/memory/memory.h"
#include "linattn/memory/memory_file.h"
#include "linattn/memory/search.h"
#include "linattn/ops/causal_linear_attention.h"
#include "linattn/ops/content_lambda.h"
#include "linattn/ops/kslot_memory.h"
#include "linattn/ops/galerkin_attention.h"
#include "linattn/ops/gates.h"
#include "linattn/ops/linear_attention.h"
#include "linattn/ops/softmax_attention.h"
#include "linattn/ops/validate.h"
