// Umbrella header: the whole public API.
#pragma once

#include "annulus/version.hpp"

#include "annulus/core/eigen.hpp"
#include "annulus/core/error.hpp"
#include "annulus/core/gemm.hpp"
#include "annulus/core/kernels.hpp"
#include "annulus/core/labels.hpp"
#include "annulus/core/matrix.hpp"
#include "annulus/core/metric.hpp"
#include "annulus/core/parallel.hpp"
#include "annulus/core/prepare.hpp"
#include "annulus/core/random.hpp"
#include "annulus/core/slots.hpp"
#include "annulus/core/topk.hpp"
#include "annulus/core/validate.hpp"

#include "annulus/index/concepts.hpp"
#include "annulus/index/flat.hpp"
#include "annulus/index/hnsw.hpp"
#include "annulus/index/ivf_flat.hpp"
#include "annulus/index/ivf_pq.hpp"
#include "annulus/index/ivf_pq_fast_scan.hpp"
#include "annulus/index/kd_tree.hpp"
#include "annulus/index/live.hpp"
#include "annulus/index/lsh.hpp"
#include "annulus/index/rp_forest.hpp"

#include "annulus/quant/centroids.hpp"
#include "annulus/quant/fast_scan.hpp"
#include "annulus/quant/sq8.hpp"
#include "annulus/quant/kmeans.hpp"
#include "annulus/quant/pq.hpp"

#include "annulus/index/banded_mips.hpp"
#include "annulus/index/mips.hpp"

#include "annulus/eval/drift.hpp"
#include "annulus/eval/geometry.hpp"
#include "annulus/eval/recall.hpp"
#include "annulus/eval/synthetic.hpp"
#include "annulus/io/vecs.hpp"
