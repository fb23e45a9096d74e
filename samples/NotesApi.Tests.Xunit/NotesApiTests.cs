using System.Net;
using System.Net.Http.Json;
using System.Text;
using Linq2DbTestKit.AspNetCore;
using Linq2DbTestKit.Xunit;
using Xunit;
using LinqToDB;
using LinqToDB.Async;
using Microsoft.Extensions.DependencyInjection;
using NotesApi.Data;
using NotesApi.Testing;

namespace NotesApi.XunitTests;

/// <summary>
/// What the tests of the API share. The API's requests and the tests' own code run in each test's scope, although the
/// application builds every linq2db context itself: what it commits is visible to the test, and nothing is left after it,
/// checked from outside. xUnit runs the classes below in parallel.
/// </summary>
public abstract class NotesTest : DatabaseTest
{
    /// <summary>A prefix of this test's titles and tags: tests run in parallel, and none sees another's rows.</summary>
    readonly string _tag = $"t{Guid.NewGuid():N}"[..12];

    HttpClient? _client;

    protected HttpClient Api => _client ??= NotesApp.Factory.CreateClient(Scope);

    public override ValueTask DisposeAsync()
    {
        _client?.Dispose();
        return base.DisposeAsync();
    }

    protected string Name(string suffix) => $"{_tag}-{suffix}";

    protected async Task<Note> CreateAsync(string title, params string[] tags)
    {
        var response = await Api.PostAsJsonAsync("/api/notes", new { title, tags }, TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        return (await response.Content.ReadFromJsonAsync<Note>(TestContext.Current.CancellationToken))!;
    }

    protected async Task EndScopeAndAssertNothingLeftAsync()
    {
        await Scope.DisposeAsync();
        Assert.Equal(0, await NotesApp.CountOutsideAsync("notes", "title", _tag));
        Assert.Equal(0, await NotesApp.CountOutsideAsync("tags", "name", _tag));
    }
}

/// <summary>Notes posted, read and deleted through the API and the application's own code.</summary>
public sealed class NoteTests : NotesTest
{
    [Fact]
    public async Task A_note_posted_is_found_by_id_and_by_tag_and_gone_after_the_test()
    {
        var created = await CreateAsync(Name("first"), Name("work"), NotesDatabase.DefaultTag);

        var fetched = await Api.GetFromJsonAsync<Note>($"/api/notes/{created.Id}", TestContext.Current.CancellationToken);
        var byTag = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("work")}", TestContext.Current.CancellationToken);

        Assert.Equal((created.Id, created.Title), (fetched!.Id, fetched.Title));
        Assert.Equal([NotesDatabase.DefaultTag, Name("work")], created.Tags);
        Assert.Equal([Name("first")], byTag!.Select(n => n.Title));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Fact]
    public async Task A_deleted_note_is_gone_for_the_test_and_a_second_delete_is_404()
    {
        var created = await CreateAsync(Name("doomed"));

        var first = await Api.DeleteAsync($"/api/notes/{created.Id}", TestContext.Current.CancellationToken);
        var second = await Api.DeleteAsync($"/api/notes/{created.Id}", TestContext.Current.CancellationToken);
        var fetched = await Api.GetAsync($"/api/notes/{created.Id}", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.NoContent, first.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, second.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, fetched.StatusCode);
    }

    [Fact]
    public async Task The_test_reads_with_the_applications_own_context_what_the_api_wrote()
    {
        var created = await CreateAsync(Name("via-api"), Name("shared"));

        // The application's context on linq2db's default configuration, built in test code: it joins the test's scope.
        await using var db = new NotesDb();
        var tag = await db.Tags.SingleAsync(t => t.Name == Name("shared"), TestContext.Current.CancellationToken);

        Assert.Equal(1, await db.NoteTags.CountAsync(nt => nt.NoteId == created.Id && nt.TagId == tag.Id, TestContext.Current.CancellationToken));
        await EndScopeAndAssertNothingLeftAsync();
    }

    [Fact]
    public async Task The_api_reads_what_the_test_wrote_through_the_applications_repository()
    {
        var repository = NotesApp.Factory.Services.GetRequiredService<NoteRepository>();
        var created = await repository.CreateAsync(Name("via-repository"), "body", [Name("direct")], TestContext.Current.CancellationToken);

        var listed = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("direct")}", TestContext.Current.CancellationToken);

        Assert.Equal(created.Id, Assert.Single(listed!).Id);
        await EndScopeAndAssertNothingLeftAsync();
    }
}

/// <summary>Tags: the one the application seeds at start-up, and one that concurrent requests create.</summary>
public sealed class TagTests : NotesTest
{
    [Fact]
    public async Task The_tag_seeded_at_start_up_is_there_and_a_note_reuses_it()
    {
        await CreateAsync(Name("seeded"), NotesDatabase.DefaultTag);

        var tags = await Api.GetFromJsonAsync<TagCount[]>("/api/tags", TestContext.Current.CancellationToken);

        Assert.Single(tags!, t => t.Name == NotesDatabase.DefaultTag);
        Assert.Equal(1, tags!.Single(t => t.Name == NotesDatabase.DefaultTag).Notes);
    }

    [Fact]
    public async Task Concurrent_requests_creating_the_same_new_tag_make_it_once()
    {
        var responses = await Task.WhenAll(Enumerable.Range(1, 5).Select(i =>
            Api.PostAsJsonAsync("/api/notes", new { title = Name($"concurrent-{i}"), tags = new[] { Name("together") } })));

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.Created, r.StatusCode));
        var notes = await Api.GetFromJsonAsync<Note[]>($"/api/notes?tag={Name("together")}", TestContext.Current.CancellationToken);
        Assert.Equal(5, notes!.Length);
        await using var db = new NotesDb();
        Assert.Equal(1, await db.Tags.CountAsync(t => t.Name == Name("together"), TestContext.Current.CancellationToken));
    }
}

/// <summary>Requests the API refuses.</summary>
public sealed class ValidationTests : NotesTest
{
    [Theory]
    [InlineData("""{"title": ""}""")]
    [InlineData("""{"title": "   "}""")]
    [InlineData("""{"tags": ["a"]}""")]
    [InlineData("""{"title": "ok", "tags": [""]}""")]
    [InlineData("""{"title": """)]
    public async Task Bad_input_is_400_with_problem_details(string body)
    {
        var response = await Api.PostAsync("/api/notes", new StringContent(body, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task A_missing_note_is_404()
    {
        var response = await Api.GetAsync("/api/notes/987654321", TestContext.Current.CancellationToken);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
