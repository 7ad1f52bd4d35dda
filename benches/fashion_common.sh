# Sourced by benches/fashion_*.sh: the demo recipe on Fashion-MNIST (784-
# 256-128-10 ReLU, Adam lr 1e-3, batch 128, 2 threads, all 60,000 training
# images, t10k as the test set) and how its training time is read.

data=/usr/share/datasets/fashion-mnist
recipe="--hidden 256,128 --act relu --opt adam --lr 1e-3 --batch 128 --val 0 --threads 2"

# fit CLI SEED EPOCHS [ARGS...]: one run of the recipe. Without --test-data
# the CLI would hold out 20 % of the training set and train on 48,000.
fit() {
    cli=$1 seed=$2 epochs=$3
    shift 3
    "$cli" fit "idx:$data/train" --test-data "idx:$data/t10k" $recipe --epochs "$epochs" \
        --seed "$seed" "$@"
}

# train_seconds < the CLI's output: the epochs' time= fields summed (the
# training loops only: no loading, no evaluation).
train_seconds() {
    grep -o 'time=[0-9.]*' | cut -d= -f2 | awk '{ s += $1 } END { printf "%.2f", s }'
}

# median < numbers separated by spaces or newlines (the lower of two middles).
median() {
    tr ' ' '\n' | sed '/^$/d' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}
