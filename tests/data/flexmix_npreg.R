# Reference fits of R's flexmix on its NPreg data, for tests/test_likelihoods.py.
#
# Writes tests/data/npreg.csv (the data) and tests/data/flexmix_npreg.json
# (flexmix's fits), so the tests compare with flexmix without R. Run from the
# repository root:
#
#   apt-get install -y r-base-core r-cran-flexmix r-cran-jsonlite
#   Rscript tests/data/flexmix_npreg.R
#
# Both fits: two components, constant mixing proportions (no concomitant
# variables), started from the true classes, no pruning (minprior = 0), EM
# run to a relative log-likelihood change of 1e-12.
suppressPackageStartupMessages({
  library(flexmix)
  library(jsonlite)
})

data("NPreg", package = "flexmix")
control <- list(iter.max = 5000, tolerance = 1e-12, minprior = 0)

gaussian <- flexmix(yn ~ x + I(x^2), data = NPreg, cluster = NPreg$class,
                    control = control)
poisson <- flexmix(yp ~ x, data = NPreg, cluster = NPreg$class,
                   model = FLXMRglm(family = "poisson"), control = control)

summarise <- function(fit) {
  p <- parameters(fit)
  coef_rows <- grep("^coef", rownames(p))
  out <- list(
    log_likelihood = as.numeric(logLik(fit)),
    n_iter = fit@iter,
    converged = fit@converged,
    prior = unname(prior(fit)),
    coef = unname(lapply(seq_len(ncol(p)), function(k) unname(p[coef_rows, k]))),
    coef_names = rownames(p)[coef_rows],
    posterior = unname(posterior(fit))
  )
  if ("sigma" %in% rownames(p)) out$sigma <- unname(p["sigma", ])
  out
}

csv <- data.frame(
  x = sprintf("%.17g", NPreg$x),
  yn = sprintf("%.17g", NPreg$yn),
  yp = sprintf("%.17g", NPreg$yp),
  class = NPreg$class
)
write.csv(csv, "tests/data/npreg.csv", row.names = FALSE, quote = FALSE)

reference <- list(
  provenance = list(
    data = "NPreg from the R package flexmix (Leisch 2004), 200 rows: x, yn, yp, class",
    script = "tests/data/flexmix_npreg.R",
    R = R.version.string,
    flexmix = as.character(packageVersion("flexmix")),
    gaussian_call = "flexmix(yn ~ x + I(x^2), data = NPreg, cluster = NPreg$class, control = list(iter.max = 5000, tolerance = 1e-12, minprior = 0))",
    poisson_call = "flexmix(yp ~ x, data = NPreg, cluster = NPreg$class, model = FLXMRglm(family = 'poisson'), control = list(iter.max = 5000, tolerance = 1e-12, minprior = 0))",
    note = "flexmix's Gaussian sigma is sqrt(n * sum(w r^2) / (sum(w) * (n - rank))), not the maximum-likelihood sqrt(sum(w r^2) / sum(w))"
  ),
  gaussian = summarise(gaussian),
  poisson = summarise(poisson)
)
writeLines(toJSON(reference, digits = NA, auto_unbox = TRUE, pretty = TRUE),
           "tests/data/flexmix_npreg.json")
