"""course_utils: the small helper package of the course "SimCLR from scratch".

One idea a module, each readable top to bottom:

    config         profiles (smoke/cpu/gpu), device, seeding, paths, the banner
    data           MNIST and CIFAR-10 as tensors; checksums; offline stand-ins
    augment        SimCLR's augmentations, batched on any device; the per-image PIL pipeline
    models         SmallCNN, resnet18_cifar, ProjectionHead, SimCLRModel
    losses         nt_xent (vectorised) and nt_xent_naive (a loop to read)
    train          the pretraining loop: mixed precision, checkpoint/resume, LARS, warm-up + cosine
    evaluate       extract_features, linear_probe, knn_accuracy, cluster_accuracy
    baselines      k-means and GMM on pixels, PCA, random and SimCLR features
    encoders       the encoders chapters 5 and 6 reload (or retrain)
    supervised     the "trained from scratch on the same labels" baseline
    pretrained     loading a published checkpoint, verified by SHA-256
    plots          view grids, training curves, UMAP, confusion matrices
    experiments    small experiments that test the paper's claims: change one setting, train briefly, measure
    distributed    NT-Xent over the global batch, one process per GPU; pretrain_ddp: the script torchrun starts
    measure        time, memory, FLOPs and the compute bound of a run; budget: each chapter's minutes on a T4
    report         glue (numbers in the prose, from the cells) and show_glued (the same, in the student copies)
    chapter_times  each chapter's running time, for its header and the instructors' guide
    checks/        the self-checks the exercises call: a module a chapter (ch01 to ch07), the retired ones

    instructor/    the instructors' and maintainers' tools (grading, the student copies, make book's config); nothing
                   above imports it, so students never need its dependencies (see its __init__.py)
"""

__version__ = "0.1.0"
