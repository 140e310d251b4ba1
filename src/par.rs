//! Independent work of one large compile on every core.
//!
//! Parsing, normalising, lowering and the artifact's lists each have parts
//! that need nothing of each other. Below [`MIN_ITEMS`] capabilities or facts
//! a thread costs more than it saves, so small compiles stay on one thread.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many items (capabilities, facts), work stays on one thread.
pub const MIN_ITEMS: usize = 2048;

/// How many threads work on `items` items: one below [`MIN_ITEMS`], else
/// every available core.
pub fn threads_for(items: usize) -> usize {
    if items < MIN_ITEMS {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

/// `(a(), b())`, with `a` on a second thread when there are `items` items
/// and more than one thread for them.
pub fn join<A: Send, B>(
    items: usize,
    a: impl FnOnce() -> A + Send,
    b: impl FnOnce() -> B,
) -> (A, B) {
    if threads_for(items) < 2 {
        return (a(), b());
    }
    std::thread::scope(|scope| {
        let a = scope.spawn(a);
        let b = b();
        (a.join().unwrap_or_else(|p| std::panic::resume_unwind(p)), b)
    })
}

/// `f` over consecutive chunks of `chunk` items, results in chunk order. With
/// `threads` below 2, `f` runs once over all items. Otherwise each thread
/// takes the next chunk until none is left, so threads finish together even
/// when items cost very different amounts.
pub fn map_chunks<T: Sync, R: Send>(
    items: &[T],
    chunk: usize,
    threads: usize,
    f: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    if threads < 2 {
        return vec![f(items)];
    }
    let chunks: Vec<&[T]> = items.chunks(chunk).collect();
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = chunks.get(i) else {
                return done;
            };
            done.push((i, f(chunk)));
        }
    };
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut done = work();
        for handle in others {
            done.extend(
                handle
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p)),
            );
        }
        done
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_back_in_order_on_any_number_of_threads() {
        let items: Vec<u32> = (0..10_000).collect();
        for threads in [1, 2, 3, 8] {
            let sums = map_chunks(&items, 7, threads, |c| c.to_vec());
            assert_eq!(sums.concat(), items, "{threads} threads");
            let expected = if threads < 2 {
                1
            } else {
                items.len().div_ceil(7)
            };
            assert_eq!(sums.len(), expected, "{threads} threads");
        }
    }

    #[test]
    fn join_returns_both_results_in_order() {
        for items in [0, MIN_ITEMS, 10 * MIN_ITEMS] {
            assert_eq!(join(items, || "a", || 2), ("a", 2));
        }
    }
}
